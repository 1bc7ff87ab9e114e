"""Convert official Monet weights: run a golden case, or write a trainer checkpoint.

  # a golden case: converted weights run in eval mode, outputs written (and scored with --check)
  python -m projects.monet.convert --case /work/shared/golden/monet/vd_tiny_s0 --out /tmp/vd.npz
  # a released HF checkpoint (MonetLLM/monet-vd-1.4B-100BT-hf) as step 0 of a trainer run
  python -m projects.monet.convert --hf /path/to/monet-vd-1.4B-100BT-hf --to_checkpoint /tmp/vd14
  # ... with another trainer config (its config.model must describe the same architecture)
  python -m projects.monet.convert --hf DIR --to_checkpoint WORKDIR --config FILE.py:ARGS

A case folder holds config.json (`kwargs`: the official MonetConfig constructor kwargs),
state_dict.npz and inputs.npz (`input_ids`); the outputs are the keys the case's outputs.npz
holds: `logits`, `loss`, `g1/<l>`, `g2/<l>` (router layers l) and `hidden/<i>` (i = 0..layers).
For --to_checkpoint the trainer config is --config, else `configs/paper.py:<preset>` with the
preset named by --preset or recognised from the checkpoint's config.json (its data must be
prepared: the trainer checks it). The state_dict -> params mapping lives in third_party/monet.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Sequence

import jax
import numpy as np
from flax import nnx

import common  # noqa: F401  (switches off eager sharding so logical-axis metadata needs no mesh)
from common import convert_cli
from projects.monet import config as config_lib
from projects.monet.config import MonetConfig
from third_party.monet import build_model, load_hf_checkpoint

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def load_case(case_dir: str) -> tuple[MonetConfig, dict[str, np.ndarray], dict[str, np.ndarray]]:
  """(config, state_dict, inputs) of a golden case folder."""
  convert_cli.check_case_dir(case_dir)
  meta = convert_cli.read_case_config(case_dir)
  if "kwargs" not in meta:
    raise ValueError(f"{case_dir}/config.json: no 'kwargs' field (the official constructor "
                     "kwargs).")
  cfg = MonetConfig.from_hf(meta["kwargs"])
  state_dict = convert_cli.load_npz(os.path.join(case_dir, "state_dict.npz"))
  inputs = convert_cli.load_npz(os.path.join(case_dir, "inputs.npz"))
  if "input_ids" not in inputs:
    raise ValueError(f"{case_dir}/inputs.npz: no 'input_ids' (found {sorted(inputs)}).")
  return cfg, state_dict, inputs


def run_case(cfg: MonetConfig, state_dict, inputs) -> dict[str, np.ndarray]:
  """Converts the weights, runs eval mode (train=False) in full fp32; the golden output keys."""
  model = build_model(cfg, state_dict)
  ids = np.asarray(inputs["input_ids"]).astype(np.int32)

  graphdef, state = nnx.split(model)

  @jax.jit
  def forward(state, ids):
    m = nnx.merge(graphdef, state)
    return m(ids, labels=ids, output_hidden_states=True, output_router_probs=True)

  with jax.default_matmul_precision("highest"):
    out = forward(state, ids)
  result = {"logits": out.logits, "loss": out.loss}
  for l, probs in enumerate(out.router_probs):
    if probs is not None:
      result[f"g1/{l}"], result[f"g2/{l}"] = probs
  for i, h in enumerate(out.hidden_states):
    result[f"hidden/{i}"] = h
  return {k: np.asarray(v, np.float32) for k, v in result.items()}


def convert_case(case_dir: str) -> dict[str, np.ndarray]:
  return run_case(*load_case(case_dir))


def _arch(cfg: MonetConfig) -> MonetConfig:
  """`cfg` without the fields that do not change the weights (dtypes, remat)."""
  return cfg.replace(dtype=None, param_dtype=None, remat_policy="none")


def preset_of(cfg: MonetConfig) -> str | None:
  """The paper preset whose architecture `cfg` has, or None."""
  names = [n for n, p in config_lib.PRESETS.items() if _arch(p) == _arch(cfg)]
  return names[0] if names else None


def trainer_config(cfg: MonetConfig, *, config_spec: str | None, preset: str | None):
  """The trainer config saved with converted weights; its model must be `cfg`'s architecture."""
  from common.train import config_io  # pylint: disable=g-import-not-at-top
  if config_spec:
    config = config_io.load_config(config_spec)
  else:
    preset = preset or preset_of(cfg)
    if preset is None:
      raise ValueError("these weights match no paper preset; pass --config FILE.py:ARGS whose "
                       f"config.model describes them ({cfg}).")
    config = config_io.load_config(f"{CONFIGS}/paper.py:{preset}")
  built = config_lib.from_config(config.model)
  if _arch(built) != _arch(cfg):
    diff = {f.name: (getattr(built, f.name), getattr(cfg, f.name))
            for f in dataclasses.fields(cfg) if getattr(_arch(built), f.name) !=
            getattr(_arch(cfg), f.name)}
    raise ValueError(f"the trainer config's model differs from the weights' "
                     f"(field: (config, weights)): {diff}.")
  return config, built


def to_checkpoint(args) -> str:
  """--hf DIR (or --case DIR with --config) -> step 0 of a checkpoint in args.to_checkpoint."""
  from common.train import export  # pylint: disable=g-import-not-at-top
  if args.case:
    if not args.config:
      raise ValueError("--case with --to_checkpoint needs --config FILE.py:ARGS (a trainer config "
                       "whose config.model is the case's architecture).")
    cfg, state_dict, _ = load_case(args.case)
    config, built = trainer_config(cfg, config_spec=args.config, preset=None)
    model = build_model(built, state_dict)
  else:
    path = os.path.join(args.hf, "config.json")
    if not os.path.isfile(path):
      raise ValueError(f"--hf={args.hf!r} has no config.json (an HF Monet folder holds config.json "
                       "and *.safetensors).")
    with open(path) as f:
      cfg = MonetConfig.from_hf(json.load(f))
    config, built = trainer_config(cfg, config_spec=args.config, preset=args.preset)
    # The config's dtype / param_dtype / remat_policy win; the weights are cast on loading.
    _, model = load_hf_checkpoint(args.hf, dtype=built.dtype, param_dtype=built.param_dtype,
                                  remat_policy=built.remat_policy)
  return export.write_checkpoint(model, config, args.to_checkpoint)


CONVERTER = convert_cli.Converter(
    prog="python -m projects.monet.convert",
    description=__doc__,
    run_case=lambda case_dir, args: convert_case(case_dir),
    to_checkpoint=to_checkpoint,
    weights="hf",
    presets=tuple(config_lib.PRESETS),
)


def main(argv: Sequence[str] | None = None) -> int:
  return convert_cli.main(CONVERTER, argv)


if __name__ == "__main__":
  sys.exit(main())
