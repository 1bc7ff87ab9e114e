"""Converts an official STViT golden case and writes our outputs.

  python -m projects.svit.convert --case ../shared/golden/stvit/tiny_s0 --out /tmp/ours.npz

Reads CASE/config.json (official constructor kwargs), CASE/state_dict.npz and
CASE/inputs.npz, builds the equivalent `projects.svit.STViT`, converts the weights
(`third_party.stvit`), runs eval mode and writes `logits` and `stage0..` (NCHW), the keys of
CASE/outputs.npz. With --check, it also scores them against CASE/outputs.npz
(max|a-b| / max(1, max|b|) <= config atol) and exits 1 on failure.
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
  p.add_argument("--case", required=True, help="golden case folder (config.json, *.npz)")
  p.add_argument("--out", required=True, help="output .npz path")
  p.add_argument("--check", action="store_true",
                 help="compare with CASE/outputs.npz and exit 1 if a key exceeds atol")
  return p


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
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
