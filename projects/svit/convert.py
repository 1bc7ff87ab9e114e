"""Converts official STViT weights: runs a golden case, or writes a trainer checkpoint.

  python -m projects.svit.convert --case ../shared/golden/stvit/tiny_s0 --out /tmp/ours.npz
  python -m projects.svit.convert --case ../shared/golden/stvit/tiny_s0 --to_checkpoint DIR
  python -m projects.svit.convert --state_dict stvit-small-224.npz --preset SViT-S \
      --to_checkpoint DIR    # a released .pth's 'model' dict saved as npz (numpy arrays)

Reads CASE/config.json (official constructor kwargs), CASE/state_dict.npz and
CASE/inputs.npz, builds the equivalent `projects.svit.STViT`, converts the weights
(`third_party.stvit`), runs eval mode and writes `logits` and `stage0..` (NCHW), the keys of
CASE/outputs.npz. With --check, it also scores them against CASE/outputs.npz
(max|a-b| / max(1, max|b|) <= config atol) and exits 1 on failure.

--to_checkpoint DIR writes the converted weights as step 0 of a trainer checkpoint in DIR
(projects/svit/export.py), evaluated by
`python projects/svit/main.py --config <config> --workdir DIR --mode=eval` or
`python -m common.eval --workdir DIR`. The config saved with it: with --case, the demo data
config around the case's model (restores without ImageNet); with --state_dict and --preset,
configs/imagenet.py:<preset>; --config path.py:args overrides either.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

import common  # noqa: F401  (switches off eager sharding before models are built)
from third_party.stvit import case as case_lib


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m projects.svit.convert", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--case", help="golden case folder (config.json, *.npz)")
  p.add_argument("--out", help="output .npz path (with --case)")
  p.add_argument("--state_dict", help="official state_dict as .npz (with --preset)")
  p.add_argument("--preset", help="SViT-S | SViT-B | SViT-L (with --state_dict)")
  p.add_argument("--to_checkpoint", metavar="WORKDIR",
                 help="write a trainer checkpoint (step 0) of the converted weights here")
  p.add_argument("--config", help="trainer config 'path.py:args' to save with the checkpoint")
  p.add_argument("--check", action="store_true",
                 help="compare with CASE/outputs.npz and exit 1 if a key exceeds atol")
  return p


def _to_checkpoint(args) -> int:
  from common.train import config_io
  from projects.svit import export
  if args.case:
    meta, state_dict, inputs = case_lib.load_case(args.case)
    config = export.case_config(meta["kwargs"], inputs["x"].shape[-1])
    kwargs = meta["kwargs"]
  else:
    if not (args.state_dict and args.preset):
      raise ValueError("--to_checkpoint needs --case, or --state_dict with --preset.")
    if not os.path.isfile(args.state_dict):
      raise ValueError(f"--state_dict={args.state_dict!r} is not a file.")
    state_dict = case_lib.load_npz(args.state_dict)
    config = export.imagenet_config(args.preset)
    kwargs = None
  if args.config:
    config = export.eval_only(config_io.load_config(args.config))
  if kwargs is None:
    from projects.svit import task as task_lib
    kwargs = _kwargs_of(task_lib.stvit_config(config))
  model = case_lib.convert(kwargs, state_dict)
  directory = export.write_checkpoint(model, config, args.to_checkpoint)
  print(f"wrote checkpoint step 0 to {directory}")
  return 0


def _kwargs_of(arch) -> dict:
  """STViTConfig -> official constructor kwargs (the converter's input)."""
  import dataclasses
  kwargs = dataclasses.asdict(arch)
  kwargs["stoken_size"] = [list(s) for s in arch.stoken_size]
  return kwargs


def main(argv: list[str] | None = None) -> int:
  parser = _parser()
  args = parser.parse_args(argv)
  if args.to_checkpoint:
    try:
      return _to_checkpoint(args)
    except ValueError as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
  if not args.case or not args.out:
    parser.error("--case and --out are required (or --to_checkpoint WORKDIR).")
  if not args.out.endswith(".npz"):
    print(f"error: --out={args.out!r} must end with .npz", file=sys.stderr)
    return 2
  try:
    outputs = case_lib.run_case(args.case)
  except ValueError as e:  # bad case folder, kwargs or state_dict: say what, no traceback
    print(f"error: {e}", file=sys.stderr)
    return 2
  out_dir = os.path.dirname(os.path.abspath(args.out))
  os.makedirs(out_dir, exist_ok=True)
  np.savez_compressed(args.out, **outputs)
  print(f"wrote {sorted(outputs)} to {args.out}")
  if not args.check:
    return 0
  with open(os.path.join(args.case, "config.json")) as f:
    atol = float(json.load(f).get("atol", 2e-5))
  expected = case_lib.load_npz(os.path.join(args.case, "outputs.npz"))
  ok = set(expected) == set(outputs)
  if not ok:
    print(f"keys differ: ours {sorted(outputs)}, expected {sorted(expected)}")
  for key in sorted(set(expected) & set(outputs)):
    err = case_lib.scored_error(outputs[key], expected[key])
    ok &= err <= atol
    print(f"{key}: scored error {err:.3e} (atol {atol:g}) {'ok' if err <= atol else 'FAIL'}")
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
