"""Converts official BiFormer weights: runs a case in eval mode, or writes a trainer checkpoint.

  python -m projects.biformer.convert --case ../shared/golden/biformer/tiny_s0 --out out.npz
  python -m projects.biformer.convert --case ../shared/golden/biformer/tiny_s0 \
      --to_checkpoint DIR
  python -m projects.biformer.convert --state_dict biformer_tiny.npz --preset BiFormer-T \
      --to_checkpoint DIR   # a released .pth's 'model' dict saved as npz (numpy arrays)

DIR/config.json gives the official class (`model`) and its constructor `kwargs`;
DIR/state_dict.npz the official weights; DIR/inputs.npz the NCHW input `x`. The output npz
holds the keys of DIR/outputs.npz: `logits`, `stage0`..`stage3` (NCHW) and
`r_idx/<stage>.<block>` (int64, sorted ascending along the last axis).

--to_checkpoint DIR writes the converted weights as step 0 of a trainer checkpoint in DIR
(projects/biformer/export.py), evaluated by
`python projects/biformer/main.py --config <config> --workdir DIR --mode=eval` or
`python -m common.eval --workdir DIR`. The config saved with it: with --case, the demo data
config around the case's model (restores without ImageNet); with --state_dict and --preset,
configs/imagenet.py:<preset>; --config path.py:args overrides either.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding)
from projects.biformer.model import BiFormer
from third_party.biformer import official_kwargs
from third_party.biformer import state_dict as state_dict_lib


def build_from_case(case_dir: str, *, attention_impl: str = "gather") -> BiFormer:
  """The model described by DIR/config.json with DIR/state_dict.npz loaded, in eval mode."""
  with open(os.path.join(case_dir, "config.json")) as f:
    meta = json.load(f)
  # drop_path_rate is forced to 0: this model only runs in eval, where drop path is the
  # identity, and without it the model holds no rng state, so it can be built abstractly
  # (nnx.eval_shape: no random init, which costs seconds of op compilation on CPU) and filled
  # entirely from the state_dict.
  cfg = official_kwargs.config_from_kwargs(meta["kwargs"], meta.get("model", "BiFormer"),
                                           attention_impl=attention_impl, drop_path_rate=0.0)
  model = nnx.eval_shape(lambda: BiFormer(cfg, rngs=nnx.Rngs(0)))
  with np.load(os.path.join(case_dir, "state_dict.npz")) as sd:
    state_dict_lib.load_state_dict(model, {k: sd[k] for k in sd.files})
  model.eval()
  return model


def run(model: BiFormer, x_nchw: np.ndarray) -> dict[str, np.ndarray]:
  """Eval forward on an NCHW batch; returns the golden keys (NCHW stages, sorted int64 r_idx)."""
  graphdef, state = nnx.split(model)

  @jax.jit
  def forward(state, x):
    return nnx.merge(graphdef, state)(x, return_features=True)

  with jax.default_matmul_precision("highest"):
    logits, feats = forward(state, jnp.asarray(x_nchw).transpose(0, 2, 3, 1))
  out = {"logits": np.asarray(logits)}
  for i, s in enumerate(feats.stages):
    out[f"stage{i}"] = np.asarray(s).transpose(0, 3, 1, 2)
  for name, idx in feats.r_idx.items():
    out[f"r_idx/{name}"] = np.sort(np.asarray(idx), axis=-1).astype(np.int64)
  return out


def convert_case(case_dir: str, *, attention_impl: str = "gather") -> dict[str, np.ndarray]:
  """Builds, converts and runs the case in DIR; returns what DIR/outputs.npz holds."""
  model = build_from_case(case_dir, attention_impl=attention_impl)
  with np.load(os.path.join(case_dir, "inputs.npz")) as inputs:
    x = inputs["x"]
  return run(model, x)


def build_from_state_dict(cfg, state_dict: dict) -> BiFormer:
  """The BiFormer of `cfg` (drop path off: eval only) holding `state_dict`, built abstractly."""
  cfg = dataclasses.replace(cfg, drop_path_rate=0.0)
  model = nnx.eval_shape(lambda: BiFormer(cfg, rngs=nnx.Rngs(0)))
  state_dict_lib.load_state_dict(model, state_dict)
  return model


def _to_checkpoint(args) -> int:
  from common.train import config_io
  from projects.biformer import export
  from projects.biformer import task as task_lib
  if args.case:
    with open(os.path.join(args.case, "config.json")) as f:
      meta = json.load(f)
    with np.load(os.path.join(args.case, "inputs.npz")) as inputs:
      size = inputs["x"].shape[-1]
    config = export.case_config(meta["kwargs"], meta.get("model", "BiFormer"), size)
    with np.load(os.path.join(args.case, "state_dict.npz")) as sd:
      state_dict = {k: sd[k] for k in sd.files}
  else:
    if not (args.state_dict and args.preset):
      raise ValueError("--to_checkpoint needs --case, or --state_dict with --preset.")
    if not os.path.isfile(args.state_dict):
      raise ValueError(f"--state_dict={args.state_dict!r} is not a file.")
    with np.load(args.state_dict) as sd:
      state_dict = {k: sd[k] for k in sd.files}
    config = export.imagenet_config(args.preset)
  if args.config:
    config = export.eval_only(config_io.load_config(args.config))
  model = build_from_state_dict(task_lib.biformer_config(config), state_dict)
  directory = export.write_checkpoint(model, config, args.to_checkpoint)
  print(f"wrote checkpoint step 0 to {directory}")
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m projects.biformer.convert",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("--case", help="folder with config.json, state_dict.npz and inputs.npz")
  parser.add_argument("--out", help="output .npz path (with --case)")
  parser.add_argument("--attention_impl", default="gather", choices=["gather", "block_sparse"],
                      help="routed attention backend")
  parser.add_argument("--state_dict", help="official state_dict as .npz (with --preset)")
  parser.add_argument("--preset", help="BiFormer-T | -S | -B | -STL (with --state_dict)")
  parser.add_argument("--to_checkpoint", metavar="WORKDIR",
                      help="write a trainer checkpoint (step 0) of the converted weights here")
  parser.add_argument("--config", help="trainer config 'path.py:args' to save with it")
  args = parser.parse_args(argv)
  if args.to_checkpoint:
    try:
      return _to_checkpoint(args)
    except ValueError as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
  if not args.case or not args.out:
    parser.error("--case and --out are required (or --to_checkpoint WORKDIR).")
  for name in ("config.json", "state_dict.npz", "inputs.npz"):
    if not os.path.isfile(os.path.join(args.case, name)):
      parser.error(f"--case {args.case!r}: {name} not found there.")
  outputs = convert_case(args.case, attention_impl=args.attention_impl)
  np.savez(args.out, **outputs)
  print(f"wrote {len(outputs)} arrays to {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
