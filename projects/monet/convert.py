"""Convert an official Monet golden case (or any state_dict .npz) and run it in eval mode.

  python -m projects.monet.convert --case /work/shared/golden/monet/vd_tiny_s0 --out /tmp/vd.npz

reads CASE/config.json (`kwargs`: the official MonetConfig constructor kwargs), CASE/state_dict.npz
and CASE/inputs.npz (`input_ids`), builds the equivalent model, loads the converted weights, runs
it with labels=input_ids and writes the keys the case's outputs.npz holds: `logits`, `loss`,
`g1/<l>`, `g2/<l>` (router layers l) and `hidden/<i>` (i = 0..num_hidden_layers). The
state_dict -> params mapping lives in third_party/monet.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

import jax
import numpy as np
from flax import nnx

import common  # noqa: F401  (switches off eager sharding so logical-axis metadata needs no mesh)
from projects.monet.config import MonetConfig
from third_party.monet import build_model


def load_case(case_dir: str) -> tuple[MonetConfig, dict[str, np.ndarray], dict[str, np.ndarray]]:
  """(config, state_dict, inputs) of a golden case folder."""
  for name in ("config.json", "state_dict.npz", "inputs.npz"):
    if not os.path.exists(os.path.join(case_dir, name)):
      raise ValueError(f"--case {case_dir!r}: {name} not found (a case holds config.json, "
                       "state_dict.npz and inputs.npz).")
  with open(os.path.join(case_dir, "config.json")) as f:
    meta = json.load(f)
  if "kwargs" not in meta:
    raise ValueError(f"{case_dir}/config.json: no 'kwargs' field (the official constructor kwargs).")
  cfg = MonetConfig.from_hf(meta["kwargs"])
  with np.load(os.path.join(case_dir, "state_dict.npz")) as sd:
    state_dict = {k: sd[k] for k in sd.files}
  with np.load(os.path.join(case_dir, "inputs.npz")) as inp:
    inputs = {k: inp[k] for k in inp.files}
  if "input_ids" not in inputs:
    raise ValueError(f"{case_dir}/inputs.npz: no 'input_ids' (found {sorted(inputs)}).")
  return cfg, state_dict, inputs


def run_case(cfg: MonetConfig, state_dict, inputs) -> dict[str, np.ndarray]:
  """Converts the weights, runs eval mode in full fp32 and returns the golden output keys."""
  model = build_model(cfg, state_dict, eval_mode=True)
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


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--case", required=True, help="golden case folder (config.json, state_dict.npz, inputs.npz)")
  parser.add_argument("--out", required=True, help="output .npz path")
  args = parser.parse_args(argv)
  if not args.out.endswith(".npz"):
    raise ValueError(f"--out {args.out!r}: must end with .npz.")
  outputs = convert_case(args.case)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  np.savez_compressed(args.out, **outputs)
  print(f"wrote {len(outputs)} keys to {args.out}: {sorted(outputs)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
