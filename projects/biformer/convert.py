"""Converts official BiFormer weights: runs a case in eval mode, or writes a trainer checkpoint.

  python -m projects.biformer.convert --case ../shared/golden/biformer/tiny_s0 --out out.npz
  python -m projects.biformer.convert --case ../shared/golden/biformer/tiny_s0 \\
      --to_checkpoint DIR
  python -m projects.biformer.convert --state_dict biformer_tiny.npz --preset BiFormer-T \\
      --to_checkpoint DIR   # a released .pth's 'model' dict saved as npz (numpy arrays)

DIR/config.json gives the official class (`model`) and its constructor `kwargs`;
DIR/state_dict.npz the official weights; DIR/inputs.npz the NCHW input `x`. The output npz
holds the keys of DIR/outputs.npz: `logits`, `stage0`..`stage3` (NCHW) and
`r_idx/<stage>.<block>` (int64, sorted ascending along the last axis). `--attention_impl`
picks the routed attention (projects/biformer/config.py ATTENTION_IMPLS: `official`, the
default, or a kernel impl such as `auto`); `--check` scores the outputs against
DIR/outputs.npz. The command line is the shared one of every converter
(common/convert_cli.py).

--to_checkpoint DIR writes the converted weights as step 0 of a trainer checkpoint that
`python projects/biformer/main.py --config <config> --workdir DIR --mode=eval` evaluates;
common/tasks/image_convert.py says which config is saved with it.
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding)
from common import convert_cli
from common.tasks import image_convert
from projects.biformer import config as config_lib
from projects.biformer.model import BiFormer
from third_party.biformer import official_kwargs
from third_party.biformer import state_dict as state_dict_lib

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def build_from_state_dict(cfg: config_lib.BiFormerConfig, state_dict: dict) -> BiFormer:
  """The BiFormer of `cfg` holding `state_dict`, built abstractly (no random init)."""
  return image_convert.with_weights(BiFormer, cfg, state_dict, state_dict_lib.load_state_dict)


def build_from_case(case_dir: str, *, attention_impl: str = "official") -> BiFormer:
  """The model described by DIR/config.json with DIR/state_dict.npz loaded."""
  meta = convert_cli.read_case_config(case_dir)
  cfg = official_kwargs.config_from_kwargs(meta["kwargs"], meta.get("model", "BiFormer"),
                                           attention_impl=attention_impl)
  return build_from_state_dict(
      cfg, convert_cli.load_npz(os.path.join(case_dir, "state_dict.npz")))


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


def convert_case(case_dir: str, *, attention_impl: str = "official") -> dict[str, np.ndarray]:
  """Builds, converts and runs the case in DIR; returns what DIR/outputs.npz holds."""
  model = build_from_case(case_dir, attention_impl=attention_impl)
  return run(model, convert_cli.load_npz(os.path.join(case_dir, "inputs.npz"))["x"])


def _to_checkpoint(args) -> str:
  return image_convert.write_checkpoint(
      args, configs_dir=CONFIGS, project="biformer",
      case_arch=lambda meta: official_kwargs.config_from_kwargs(
          meta["kwargs"], meta.get("model", "BiFormer")),
      arch_fields=config_lib.ARCH_FIELDS, from_config=config_lib.from_config, model_cls=BiFormer,
      load_state_dict=state_dict_lib.load_state_dict)


def _add_arguments(parser) -> None:
  parser.add_argument("--attention_impl", default="official",
                      choices=config_lib.ATTENTION_IMPLS, help="routed attention (--case)")


CONVERTER = convert_cli.Converter(
    prog="python -m projects.biformer.convert", description=__doc__,
    run_case=lambda case_dir, args: convert_case(case_dir, attention_impl=args.attention_impl),
    to_checkpoint=_to_checkpoint, presets=tuple(config_lib.PRESETS),
    add_arguments=_add_arguments)


def main(argv: Sequence[str] | None = None) -> int:
  return convert_cli.main(CONVERTER, argv)


if __name__ == "__main__":
  sys.exit(main())
