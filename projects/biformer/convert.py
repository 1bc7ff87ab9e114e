"""Converts an official BiFormer case (config, state_dict, inputs) and runs it in eval mode.

  python -m projects.biformer.convert --case ../shared/golden/biformer/tiny_s0 --out out.npz

DIR/config.json gives the official class (`model`) and its constructor `kwargs`;
DIR/state_dict.npz the official weights; DIR/inputs.npz the NCHW input `x`. The output npz
holds the keys of DIR/outputs.npz: `logits`, `stage0`..`stage3` (NCHW) and
`r_idx/<stage>.<block>` (int64, sorted ascending along the last axis).
"""
from __future__ import annotations

import argparse
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


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m projects.biformer.convert",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("--case", required=True,
                      help="folder with config.json, state_dict.npz and inputs.npz")
  parser.add_argument("--out", required=True, help="output .npz path")
  parser.add_argument("--attention_impl", default="gather", choices=["gather", "block_sparse"],
                      help="routed attention backend")
  args = parser.parse_args(argv)
  for name in ("config.json", "state_dict.npz", "inputs.npz"):
    if not os.path.isfile(os.path.join(args.case, name)):
      parser.error(f"--case {args.case!r}: {name} not found there.")
  outputs = convert_case(args.case, attention_impl=args.attention_impl)
  np.savez(args.out, **outputs)
  print(f"wrote {len(outputs)} arrays to {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
