"""The one command line of every converter (`python -m projects.<name>.convert`).

  --case DIR --out OUT.npz [--check]          run an official golden case, write its outputs
  --case DIR --to_checkpoint WORKDIR          the case's weights as a trainer checkpoint
  --state_dict FILE.npz --to_checkpoint WORKDIR [--preset NAME] [--config FILE.py:ARGS]
  --hf DIR --to_checkpoint WORKDIR            (projects whose real weights are HF folders)

A project describes its converter once as a `Converter` and calls `main(converter, argv)`.
The helper owns the flags, their checks and the error contract: a bad argument, case folder
or weights file prints one line `error: ...` on stderr and exits 2 (add `--traceback` to see
the traceback); `--check` scores every key of OUT against CASE/outputs.npz with the shared
harness score max|a-b| / max(1, max|b|) <= CASE/config.json "atol" and exits 1 on a failure.
Outputs are written atomically (a temporary name, then a rename).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Callable, Mapping, Sequence

import numpy as np

CASE_FILES = ("config.json", "state_dict.npz", "inputs.npz")

Outputs = Mapping[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Converter:
  """What a project's convert.py supplies.

  Attributes:
    prog: the command, e.g. "python -m projects.svit.convert".
    description: the help text (usually the module docstring).
    run_case: (case folder, parsed args) -> outputs under the keys of CASE/outputs.npz.
    to_checkpoint: parsed args -> the checkpoint directory written; None when the project
      has no trainer checkpoint to write (then --to_checkpoint and the weights flag are absent).
      It reads `args.case` or the weights flag (`args.state_dict` / `args.hf`), and
      `args.preset` / `args.config` where present.
    weights: the real-weights flag: "state_dict" (an .npz of the official state_dict) or "hf"
      (a Hugging Face model folder).
    presets: paper preset names accepted by --preset (no --preset flag when empty).
    add_arguments: adds project flags (e.g. --attention_impl) to the parser.
    case_files: files a case folder must hold.
  """
  prog: str
  description: str
  run_case: Callable[[str, argparse.Namespace], Outputs]
  to_checkpoint: Callable[[argparse.Namespace], str] | None = None
  weights: str = "state_dict"
  presets: Sequence[str] = ()
  add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
  case_files: Sequence[str] = CASE_FILES

  def __post_init__(self):
    if self.weights not in ("state_dict", "hf"):
      raise ValueError(f"weights={self.weights!r} is invalid: expected 'state_dict' or 'hf'.")


def build_parser(converter: Converter) -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog=converter.prog, description=converter.description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--case", metavar="DIR",
                 help=f"golden case folder ({', '.join(converter.case_files)})")
  p.add_argument("--out", metavar="OUT.npz", help="write the case's outputs here (with --case)")
  p.add_argument("--check", action="store_true",
                 help="score --out against CASE/outputs.npz; exit 1 if a key exceeds atol")
  if converter.to_checkpoint is not None:
    if converter.weights == "state_dict":
      p.add_argument("--state_dict", metavar="FILE.npz",
                     help="official state_dict saved as .npz (numpy arrays)")
    else:
      p.add_argument("--hf", metavar="DIR", help="Hugging Face model folder")
    if converter.presets:
      p.add_argument("--preset", choices=tuple(converter.presets),
                     help="paper preset of the weights (with --" + converter.weights + ")")
    p.add_argument("--to_checkpoint", metavar="WORKDIR",
                   help="write the converted weights as step 0 of a trainer checkpoint here")
    p.add_argument("--config", metavar="FILE.py:ARGS",
                   help="trainer config to save with the checkpoint (default: the project's)")
  p.add_argument("--traceback", action="store_true", help="show the traceback of an error")
  if converter.add_arguments is not None:
    converter.add_arguments(p)
  return p


def load_npz(path: str) -> dict[str, np.ndarray]:
  with np.load(path) as data:
    return {k: data[k] for k in data.files}


def check_case_dir(case_dir: str, files: Sequence[str] = CASE_FILES) -> None:
  """Raises ValueError unless `case_dir` is a folder holding every one of `files`."""
  if not os.path.isdir(case_dir):
    raise ValueError(f"--case={case_dir!r} is not a directory; expected a golden case folder "
                     f"holding {', '.join(files)}.")
  absent = [n for n in files if not os.path.isfile(os.path.join(case_dir, n))]
  if absent:
    raise ValueError(f"--case={case_dir!r} lacks {', '.join(absent)}; a case folder holds "
                     f"{', '.join(files)}.")


def read_case_config(case_dir: str) -> dict:
  with open(os.path.join(case_dir, "config.json")) as f:
    return json.load(f)


def scored_error(actual: np.ndarray, expected: np.ndarray) -> float:
  """The shared harness score: max|a - b| / max(1, max|b|)."""
  a, b = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"shape {a.shape} differs from the expected {b.shape}.")
  if a.size == 0:
    return 0.0
  return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def write_npz(path: str, arrays: Outputs) -> None:
  """Writes `arrays` to `path` atomically (a half-written file never has the final name)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path[:-len(".npz")] + ".tmp.npz"
  np.savez_compressed(tmp, **arrays)
  os.replace(tmp, path)


def check_outputs(outputs: Outputs, case_dir: str) -> bool:
  """Prints the score of every key against CASE/outputs.npz; True when all are within atol."""
  atol = read_case_config(case_dir).get("atol")
  if atol is None:
    raise ValueError(f"{case_dir}/config.json has no 'atol'; --check needs it.")
  expected = load_npz(os.path.join(case_dir, "outputs.npz"))
  ok = set(expected) == set(outputs)
  if not ok:
    print(f"keys differ: ours {sorted(outputs)}, expected {sorted(expected)}")
  for key in sorted(set(expected) & set(outputs)):
    err = scored_error(outputs[key], expected[key])
    ok &= err <= atol
    print(f"{key}: scored error {err:.3e} (atol {atol:g}) {'ok' if err <= atol else 'FAIL'}")
  return bool(ok)


def _run(converter: Converter, parser: argparse.ArgumentParser,
         args: argparse.Namespace) -> int:
  to_ckpt = getattr(args, "to_checkpoint", None)
  weights = getattr(args, converter.weights, None) if converter.to_checkpoint else None
  if args.case and weights:
    parser.error(f"--case and --{converter.weights} exclude each other.")
  if not args.case and not weights:
    parser.error("give --case DIR (with --out OUT.npz or --to_checkpoint WORKDIR)"
                 + (f", or --{converter.weights} with --to_checkpoint WORKDIR"
                    if converter.to_checkpoint else "") + ".")
  if args.case and not (args.out or to_ckpt):
    parser.error("--case needs --out OUT.npz" + (" or --to_checkpoint WORKDIR"
                                                 if converter.to_checkpoint else "") + ".")
  if weights and not to_ckpt:
    parser.error(f"--{converter.weights} needs --to_checkpoint WORKDIR.")
  if args.check and not (args.case and args.out):
    parser.error("--check needs --case and --out.")
  if args.out and not args.out.endswith(".npz"):
    raise ValueError(f"--out={args.out!r} must end with .npz.")
  if weights:
    exists = os.path.isfile if converter.weights == "state_dict" else os.path.isdir
    if not exists(weights):
      kind = "file" if converter.weights == "state_dict" else "directory"
      raise ValueError(f"--{converter.weights}={weights!r} is not a {kind}.")
  status = 0
  if args.case:
    check_case_dir(args.case, converter.case_files)
  if args.case and args.out:
    outputs = {k: np.asarray(v) for k, v in converter.run_case(args.case, args).items()}
    write_npz(args.out, outputs)
    print(f"wrote {len(outputs)} arrays to {args.out}: {sorted(outputs)}")
    if args.check and not check_outputs(outputs, args.case):
      status = 1
  if to_ckpt:
    directory = converter.to_checkpoint(args)
    print(f"wrote checkpoint step 0 to {directory}")
  return status


def main(converter: Converter, argv: Sequence[str] | None = None) -> int:
  """Parses `argv` (default sys.argv[1:]) and runs the converter; returns the exit status."""
  parser = build_parser(converter)
  args = parser.parse_args(argv)
  try:
    return _run(converter, parser, args)
  except (ValueError, FileNotFoundError) as e:
    if args.traceback:
      raise
    print(f"error: {e}", file=sys.stderr)
    return 2
