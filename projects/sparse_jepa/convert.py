"""CLI: convert an official I-JEPA golden case and write the converted model's outputs.

  python -m projects.sparse_jepa.convert --case /work/shared/golden/ijepa/vit_tiny_p4_s0 \
      --out /tmp/ijepa_out.npz

Reads DIR/config.json, DIR/state_dict.npz and DIR/inputs.npz, converts the weights
(third_party.ijepa.convert), runs eval mode and writes the keys DIR/outputs.npz holds (all outputs
when that file is absent): h, z, loss, target_encoder_out, context_encoder_out.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import common  # noqa: F401  (switches off eager sharding before any model is built)
from third_party.ijepa import convert as ijepa_convert


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--case", required=True, help="golden case folder")
  parser.add_argument("--out", required=True, help="output .npz path")
  args = parser.parse_args(argv)
  for name in ("config.json", "state_dict.npz", "inputs.npz"):
    path = os.path.join(args.case, name)
    if not os.path.isfile(path):
      raise ValueError(f"--case={args.case!r}: {name} is missing ({path}); a case folder holds "
                       "config.json, state_dict.npz and inputs.npz.")
  if not args.out.endswith(".npz"):
    raise ValueError(f"--out={args.out!r}; allowed: a path ending in .npz.")
  return args


def main(argv=None) -> dict[str, np.ndarray]:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  outputs = ijepa_convert.run_case(args.case)
  ref_path = os.path.join(args.case, "outputs.npz")
  if os.path.isfile(ref_path):
    with np.load(ref_path) as ref:
      keys = list(ref.keys())
    absent = [k for k in keys if k not in outputs]
    if absent:
      raise ValueError(f"outputs.npz holds keys {absent} that this converter does not produce "
                       f"(it produces {sorted(outputs)}).")
    outputs = {k: outputs[k] for k in keys}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  np.savez(args.out, **outputs)
  return outputs


if __name__ == "__main__":
  main()
