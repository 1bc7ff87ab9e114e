"""Convert official SEA weights: run a golden case, or write step 0 of a run from HF OPT weights.

  python -m projects.sea.convert --case DIR --out OUT.npz [--check] [--attention_impl official]
  python -m projects.sea.convert --hf DIR --to_checkpoint WORKDIR \
      [--preset opt-125m | --config projects/sea/configs/opt.py:opt-125m,hf=DIR,wiki=WIKI]

--case: DIR holds config.json, state_dict.npz and inputs.npz (shared/golden format, see
shared/golden/README.md "sea"). The layer is built from config.json, the official weights are
converted (third_party/sea_attention), the layer runs in eval mode (attention_impl 'official' by
default: the dense keep mask of the official code) and OUT.npz receives the same keys as
DIR/outputs.npz.
--hf: an HF OPT checkpoint folder (config.json + safetensors, third_party/hf_opt) becomes step 0
of the --config run (default configs/opt.py at --preset, or at the preset whose shapes match the
folder's config.json): the dense weights fill the frozen teacher and the student's dense parts
(export_opt.py, which also exports a finished dense run of this project).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common import convert_cli
from projects.sea.attention import SEAAttention
from projects.sea.config import ATTENTION_IMPLS, OFFICIAL, PRESETS, SHAPE_FIELDS

# outputs.npz keys and the dtype each is stored with.
OUTPUT_KEYS = (
    "context", "estimated_attention_score", "estimated_attention_probs_m",
    "estimated_attention_score_dec_row", "t_attention_predictor", "performer_context_layer",
    "per_item_top_k", "mask_compressed_keep", "mask_keep", "estimated_scales",
    "gate_attn_scale", "gate_mix", "partial_attention_probs", "partial_context_layer_1",
    "average_context_layer",
)
MASK_KEYS = ("mask_compressed_keep", "mask_keep")


def build_layer(config: dict, *, attention_impl: str = OFFICIAL, abstract: bool = True,
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


def run_case(case_dir: str, *, attention_impl: str = OFFICIAL) -> dict[str, np.ndarray]:
  """Builds, converts and runs one golden case; returns the outputs.npz keys as NumPy arrays.

  Args:
    case_dir: folder with config.json, state_dict.npz and inputs.npz.
    attention_impl: "official" gives all 15 keys; the kernel impls give all but
      partial_attention_probs (a dense [T, T] matrix), with mask_keep rebuilt from their
      kept-key lists.
  """
  from third_party.sea_attention import load_state_dict
  convert_cli.check_case_dir(case_dir)
  config = convert_cli.read_case_config(case_dir)
  state_dict = convert_cli.load_npz(os.path.join(case_dir, "state_dict.npz"))
  inputs = convert_cli.load_npz(os.path.join(case_dir, "inputs.npz"))
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


def _preset_of(hf_dir: str) -> str:
  """The preset whose shapes equal the HF folder's config.json (for a default --config)."""
  from third_party import hf_opt  # pylint: disable=g-import-not-at-top
  fields = hf_opt.config_fields(hf_opt.read_config(hf_dir))
  for name, preset in PRESETS.items():
    if all(fields[f] == getattr(preset, f) for f in SHAPE_FIELDS):
      return name
  raise ValueError(f"{hf_dir}/config.json has {fields}, which is none of the presets "
                   f"{sorted(PRESETS)}; pass --config FILE.py:ARGS with these shapes.")


def to_checkpoint(args: argparse.Namespace) -> str:
  """--hf DIR --to_checkpoint WORKDIR: step 0 of the --config run from HF OPT weights."""
  from common.train import config_io  # pylint: disable=g-import-not-at-top
  from projects.sea import export_opt  # pylint: disable=g-import-not-at-top
  if args.case:
    raise ValueError("a SEA golden case holds one attention layer, not an OPT model; "
                     "--to_checkpoint takes --hf DIR (an HF OPT checkpoint folder).")
  config = args.config or (f"projects/sea/configs/opt.py:"
                           f"{args.preset or _preset_of(args.hf)},hf={args.hf}")
  return export_opt.export_checkpoint(config_io.load_config(config), args.to_checkpoint,
                                      hf_dir=args.hf)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--attention_impl", default=OFFICIAL, choices=ATTENTION_IMPLS,
                      help="with --case: 'official' (dense keep mask, all 15 keys) or a "
                      "common.kernels impl of the row-sparse op")


CONVERTER = convert_cli.Converter(
    prog="python -m projects.sea.convert", description=__doc__,
    run_case=lambda case_dir, args: run_case(case_dir, attention_impl=args.attention_impl),
    to_checkpoint=to_checkpoint, weights="hf", presets=tuple(PRESETS),
    add_arguments=_add_arguments)


def main(argv: Sequence[str] | None = None) -> int:
  return convert_cli.main(CONVERTER, argv)


if __name__ == "__main__":
  sys.exit(main())
