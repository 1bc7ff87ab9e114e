r"""Convert official I-JEPA weights: run a golden case, or write a trainer checkpoint.

  # a golden case: converted weights, the official forward, outputs written (--check scores them)
  python -m projects.sparse_jepa.convert --case /work/shared/golden/ijepa/vit_tiny_p4_s0 \
      --out /tmp/ijepa_out.npz
  # released weights (the official checkpoint's encoder / predictor / target_encoder state_dicts
  # saved as one .npz with keys 'encoder/<key>', 'predictor/<key>', 'target_encoder/<key>')
  python -m projects.sparse_jepa.convert --state_dict in1k_vith14.npz --to_checkpoint /tmp/vith14
  python -m projects.sparse_jepa.convert --state_dict W.npz --to_checkpoint DIR \
      --config FILE.py:ARGS

A case folder holds config.json, state_dict.npz and inputs.npz; the outputs are the keys its
outputs.npz holds (all outputs when that file is absent): h, z, loss, target_encoder_out,
context_encoder_out. For --to_checkpoint the trainer config is --config (default
configs/ijepa_vith14_imagenet.py, the released ViT-H/14; its data must be prepared, the trainer
checks it); its config.model must describe the weights' model, with sparse=False. The
state_dict -> params mapping lives in third_party/ijepa.
"""
from __future__ import annotations

import os
import sys

import numpy as np

import common  # noqa: F401  (switches off eager sharding before any model is built)
from common import convert_cli
from third_party.ijepa import convert as ijepa_convert

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs",
                              "ijepa_vith14_imagenet.py")


def run_case(case_dir: str) -> dict[str, np.ndarray]:
  """The converted model's outputs, under the keys of CASE/outputs.npz when that file exists."""
  outputs = ijepa_convert.run_case(case_dir)
  ref_path = os.path.join(case_dir, "outputs.npz")
  if not os.path.isfile(ref_path):
    return outputs
  with np.load(ref_path) as ref:
    keys = list(ref.keys())
  absent = [k for k in keys if k not in outputs]
  if absent:
    raise ValueError(f"outputs.npz holds keys {absent} that this converter does not produce "
                     f"(it produces {sorted(outputs)}).")
  return {k: outputs[k] for k in keys}


def to_checkpoint(args) -> str:
  """--state_dict FILE (or --case DIR) -> step 0 of a trainer checkpoint in args.to_checkpoint."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from common.train import config_io, export  # pylint: disable=g-import-not-at-top
  from projects.sparse_jepa import task as task_lib  # pylint: disable=g-import-not-at-top
  if args.case and not args.config:
    raise ValueError("--case with --to_checkpoint needs --config FILE.py:ARGS (a trainer config "
                     "whose config.model is the case's model).")
  config = config_io.load_config(args.config or DEFAULT_CONFIG)
  path = os.path.join(args.case, "state_dict.npz") if args.case else args.state_dict
  state_dict = convert_cli.load_npz(path)
  task = task_lib.get_task(config)
  model = nnx.eval_shape(lambda: task.build_model(nnx.Rngs(0)))
  ijepa_convert.load_jepa(model, state_dict)
  return export.write_checkpoint(model, config, args.to_checkpoint)


CONVERTER = convert_cli.Converter(
    prog="python -m projects.sparse_jepa.convert",
    description=__doc__,
    run_case=lambda case_dir, args: run_case(case_dir),
    to_checkpoint=to_checkpoint,
)


def main(argv=None) -> int:
  return convert_cli.main(CONVERTER, argv)


if __name__ == "__main__":
  sys.exit(main())
