"""Convert an official SEA golden case and run it.

  python -m projects.sea.convert --case DIR --out OUT.npz [--attention-impl dense]

DIR holds config.json, state_dict.npz and inputs.npz (shared/golden format, see
shared/golden/README.md "sea"). The layer is built from config.json, the official weights are
converted (third_party/sea_attention), the layer runs in eval mode on the dense reference path
and OUT.npz receives the same keys as DIR/outputs.npz.
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

from projects.sea.attention import SEAAttention

# outputs.npz keys and the dtype each is stored with.
OUTPUT_KEYS = (
    "context", "estimated_attention_score", "estimated_attention_probs_m",
    "estimated_attention_score_dec_row", "t_attention_predictor", "performer_context_layer",
    "per_item_top_k", "mask_compressed_keep", "mask_keep", "estimated_scales",
    "gate_attn_scale", "gate_mix", "partial_attention_probs", "partial_context_layer_1",
    "average_context_layer",
)
MASK_KEYS = ("mask_compressed_keep", "mask_keep")


def _load_npz(path: str) -> dict[str, np.ndarray]:
  if not os.path.isfile(path):
    raise ValueError(f"case file {path!r} does not exist; a case folder needs config.json, "
                     "state_dict.npz and inputs.npz.")
  with np.load(path) as z:
    return {k: z[k] for k in z.files}


def build_layer(config: dict, *, attention_impl: str = "dense", abstract: bool = True,
                seed: int = 0) -> SEAAttention:
  """SEAAttention with the official configuration of a golden case.

  Args:
    config: the case's config.json.
    attention_impl: see SEAAttention.
    abstract: build shapes only (nnx.eval_shape) for load_state_dict to fill; eager random
      initialisation dispatches many small ops and takes seconds on a CPU.
    seed: initialisation seed when abstract is False.
  """
  from third_party.sea_attention import layer_kwargs_from_configs
  cfg = config.get("config", {})
  if "BertConfig" not in cfg or "PerlinAttentionConfig" not in cfg:
    raise ValueError("config.json field 'config' must hold 'BertConfig' and "
                     f"'PerlinAttentionConfig'; found {sorted(cfg)}.")
  kwargs = layer_kwargs_from_configs(cfg["BertConfig"], cfg["PerlinAttentionConfig"])
  def make():
    return SEAAttention(**kwargs, attention_impl=attention_impl, rngs=nnx.Rngs(seed))
  return nnx.eval_shape(make) if abstract else make()


def _check_causal_mask(mask: np.ndarray, t: int) -> None:
  """The ported path takes OPT's plain causal mask (no padding); refuse anything else."""
  if mask.shape[-2:] != (t, t) or mask.ndim != 4 or mask.shape[1] != 1:
    raise ValueError(f"inputs.npz attention_mask shape {mask.shape} is not allowed: expected "
                     f"[N, 1, {t}, {t}].")
  keep = np.tril(np.ones((t, t), bool))
  if not (np.all(mask[..., keep] > -1) and np.all(mask[..., ~keep] < -1)):
    raise ValueError("inputs.npz attention_mask is not allowed: only the plain causal mask "
                     "(0 where key <= query, large negative elsewhere) is supported.")


def run_case(case_dir: str, *, attention_impl: str = "dense") -> dict[str, np.ndarray]:
  """Builds, converts and runs one golden case; returns the outputs.npz keys as NumPy arrays.

  Args:
    case_dir: folder with config.json, state_dict.npz and inputs.npz.
    attention_impl: "dense" gives all 15 keys; the row-sparse impls give all but
      partial_attention_probs (a dense [T, T] matrix), with mask_keep rebuilt from their
      kept-key lists.
  """
  from third_party.sea_attention import load_state_dict
  config_path = os.path.join(case_dir, "config.json")
  if not os.path.isfile(config_path):
    raise ValueError(f"case file {config_path!r} does not exist; --case must be a golden "
                     "case folder.")
  with open(config_path) as f:
    config = json.load(f)
  state_dict = _load_npz(os.path.join(case_dir, "state_dict.npz"))
  inputs = _load_npz(os.path.join(case_dir, "inputs.npz"))
  for name in ("q", "k", "v"):
    if name not in inputs:
      raise ValueError(f"inputs.npz has no {name!r}; it holds {sorted(inputs)}.")
  if "attention_mask" in inputs:
    _check_causal_mask(inputs["attention_mask"], inputs["q"].shape[-2])
  layer = build_layer(config, attention_impl=attention_impl)
  load_state_dict(layer, state_dict)

  @nnx.jit
  def forward(layer, q, k, v):
    return layer(q, k, v, return_intermediates=True)

  with jax.default_matmul_precision("highest"):
    out = forward(layer, *(jnp.asarray(inputs[n], jnp.float32) for n in ("q", "k", "v")))
  values = dict(out.intermediates)
  values.update(context=out.context, estimated_attention_score=out.estimated_attention_score,
                estimated_attention_probs_m=out.estimated_attention_probs_m,
                mask_compressed_keep=out.mask_compressed_keep)
  if out.key_indices is not None:
    # Row-sparse paths: rebuild the [T, T] key mask from the kept-key lists themselves.
    idx, valid = np.asarray(out.key_indices), np.asarray(out.key_valid)
    t = idx.shape[-2]
    keep = np.zeros(idx.shape[:-1] + (t + 1,), bool)  # column t collects the padded slots
    np.put_along_axis(keep, np.where(valid, idx, t), True, axis=-1)
    values["mask_keep"] = keep[..., :t]
  result = {}
  for key in OUTPUT_KEYS:
    if key in values:
      result[key] = np.asarray(values[key], np.uint8 if key in MASK_KEYS else np.float32)
  return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m projects.sea.convert",
                                   description="Convert and run an official SEA golden case.")
  parser.add_argument("--case", required=True,
                      help="golden case folder (config.json, state_dict.npz, inputs.npz)")
  parser.add_argument("--out", required=True, help="output .npz path (same keys as outputs.npz)")
  parser.add_argument("--attention-impl", default="dense", choices=("dense", "gather", "kernel"),
                      help="sparse attention implementation (dense gives all 15 keys)")
  args = parser.parse_args(argv)
  if not args.out.endswith(".npz"):
    parser.error(f"--out={args.out!r} is not allowed: it must end with .npz")
  if not os.path.isdir(args.case):
    parser.error(f"--case={args.case!r} is not allowed: it must be an existing folder")
  return args


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(argv)
  outputs = run_case(args.case, attention_impl=args.attention_impl)
  out_dir = os.path.dirname(os.path.abspath(args.out))
  os.makedirs(out_dir, exist_ok=True)
  tmp = args.out[:-len(".npz")] + ".tmp.npz"
  np.savez_compressed(tmp, **outputs)
  os.replace(tmp, args.out)  # atomic: a half-written file never carries the final name
  print(f"wrote {len(outputs)} keys to {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
