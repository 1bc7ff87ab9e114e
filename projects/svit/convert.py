"""Converts official STViT weights: runs a golden case, or writes a trainer checkpoint.

  python -m projects.svit.convert --case ../shared/golden/stvit/tiny_s0 --out /tmp/ours.npz
  python -m projects.svit.convert --case ../shared/golden/stvit/tiny_s0 --to_checkpoint DIR
  python -m projects.svit.convert --state_dict stvit-small-224.npz --preset SViT-S \\
      --to_checkpoint DIR    # a released .pth's 'model' dict saved as npz (numpy arrays)

Reads CASE/config.json (official constructor kwargs), CASE/state_dict.npz and
CASE/inputs.npz, builds the equivalent `projects.svit.STViT`, converts the weights
(`third_party.stvit`), runs eval mode and writes `logits` and `stage0..` (NCHW), the keys of
CASE/outputs.npz. With --check, it also scores them against CASE/outputs.npz
(max|a-b| / max(1, max|b|) <= config atol) and exits 1 on failure. The command line is the
shared one of every converter (common/convert_cli.py).

--to_checkpoint DIR writes the converted weights as step 0 of a trainer checkpoint that
`python projects/svit/main.py --config <config> --workdir DIR --mode=eval` evaluates;
common/tasks/image_convert.py says which config is saved with it.
"""
from __future__ import annotations

import os
import sys

import common  # noqa: F401  (switches off eager sharding before models are built)
from common import convert_cli
from projects.svit import config as config_lib
from third_party.stvit import case as case_lib

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def _run_case(case_dir: str, args) -> dict:
  del args
  return case_lib.run_case(case_dir)


def _case_arch(meta: dict) -> config_lib.STViTConfig:
  """The STViTConfig of a case's config.json (`STViT(**kwargs)`)."""
  from third_party.stvit import config as official  # the kwargs mapping and its checks
  if meta.get("model", "STViT") != "STViT":
    raise ValueError(f"config.json model={meta.get('model')!r}; this converter handles 'STViT'.")
  return official.config_from_kwargs(meta["kwargs"])


def _to_checkpoint(args) -> str:
  from common.tasks import image_convert
  from projects.svit.model import STViT
  from third_party.stvit import weights
  return image_convert.write_checkpoint(
      args, configs_dir=CONFIGS, project="svit", case_arch=_case_arch,
      arch_fields=config_lib.ARCH_FIELDS, from_config=config_lib.from_config, model_cls=STViT,
      load_state_dict=weights.load_state_dict)


CONVERTER = convert_cli.Converter(
    prog="python -m projects.svit.convert", description=__doc__, run_case=_run_case,
    to_checkpoint=_to_checkpoint, presets=tuple(config_lib.PRESETS))


def main(argv: list[str] | None = None) -> int:
  return convert_cli.main(CONVERTER, argv)


if __name__ == "__main__":
  sys.exit(main())
