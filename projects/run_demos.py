"""The main job: every project's demo reproduction, then one results table.

  python -m projects.run_demos [--out results] [--only lazy_neuron,svit] [--quick]

A project takes part by having `projects/<name>/demo.py` with
`run(out_dir: str, *, quick: bool) -> list[dict]`; each row has the keys of `COLUMNS`
("paper" is what the paper claims, "measured" what this run measured). The table is printed
and written to `<out>/demo_results.md` (and `.json`: {rows, seconds}). A demo that sets
`IN_MAIN_JOB = False` (with a reason in `NOT_IN_MAIN_JOB_BECAUSE`) runs only when named in
`--only`, e.g. while its CPU cost is still far beyond the main job's budget. Each demo's wall
time (with the datasets it builds and the programs it compiles) ends the table, beside the total,
so that a run shows where the main job's 90-minute budget goes.

Compiled programs are kept in XLA's persistent cache (`<out>/xla_cache`; `--xla_cache ''` for
none): runs that share a model (a demo's seeds and variants) can reuse each other's compiled
programs, and a re-run main job recompiles only what changed.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import time
import traceback

from common import registry

COLUMNS = ("project", "experiment", "metric", "paper", "measured")


def discover() -> list[str]:
  """The projects that have a demo.py."""
  return [name.split(".")[1] for name in registry.project_modules("demo")]


def in_main_job(name: str) -> bool:
  demo = importlib.import_module(f"projects.{name}.demo")
  if getattr(demo, "IN_MAIN_JOB", True):
    return True
  print(f"=== {name}: not in the main job: {getattr(demo, 'NOT_IN_MAIN_JOB_BECAUSE', '')} "
        f"(run it with --only {name}) ===", flush=True)
  return False


def to_markdown(rows: list[dict]) -> str:
  lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
  for r in rows:
    lines.append("| " + " | ".join(str(r.get(c, "")).replace("|", "/") for c in COLUMNS) + " |")
  return "\n".join(lines)


def timing_markdown(seconds: dict[str, float]) -> str:
  """The wall-time table: one row per demo, then the total, in minutes."""
  lines = ["| demo | wall time |", "|---|---|"]
  lines += [f"| {name} | {t / 60:.1f} min |" for name, t in seconds.items()]
  lines.append(f"| total | {sum(seconds.values()) / 60:.1f} min |")
  return "\n".join(lines)


def run_mode(description: str, modes: dict, *, steps: bool = False, argv=None) -> None:
  """The command line of a demo's experiments outside the main job, one per mode:
  `python -m projects.<name>.demo MODE OUT [--quick] [--steps N]`. Each mode is
  `fn(out_dir, *, quick[, steps]) -> rows`, printed as the main job's table; `steps=True` offers
  --steps (passed only when given, so each mode keeps its own default)."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("mode", choices=tuple(modes))
  parser.add_argument("out", help="output folder (a demo's own reuses its finished runs)")
  parser.add_argument("--quick", action="store_true", help="tiny models, one seed, seconds")
  if steps:
    parser.add_argument("--steps", type=int, default=None, help="train steps of every run")
  args = parser.parse_args(argv)
  extra = {"steps": args.steps} if steps and args.steps is not None else {}
  print(to_markdown(modes[args.mode](args.out, quick=args.quick, **extra)))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="results", help="directory for workdirs and the table")
  parser.add_argument("--only", default="", help="comma-separated project names")
  parser.add_argument("--quick", action="store_true", help="seconds-long settings (smoke test)")
  parser.add_argument("--xla_cache", default=None,
                      help="persistent compilation cache folder (default <out>/xla_cache; '' off)")
  args = parser.parse_args(argv)
  cache = os.path.join(args.out, "xla_cache") if args.xla_cache is None else args.xla_cache
  if cache:
    import jax
    jax.config.update("jax_compilation_cache_dir", os.path.abspath(cache))
  names = [n for n in args.only.split(",") if n] or [n for n in discover() if in_main_job(n)]
  os.makedirs(args.out, exist_ok=True)
  rows, failed, seconds = [], [], {}
  for name in names:
    start = time.time()
    print(f"=== {name}: demo ===", flush=True)
    try:
      demo = importlib.import_module(f"projects.{name}.demo")
      rows += demo.run(os.path.join(args.out, name), quick=args.quick)
    except Exception:  # one broken demo must not hide the others' results
      traceback.print_exc()
      failed.append(name)
      rows.append(dict(project=name, experiment="demo", metric="status", paper="",
                       measured="FAILED (see log)"))
    seconds[name] = time.time() - start
    print(f"=== {name}: {seconds[name]:.0f}s ===", flush=True)
  table = to_markdown(rows) + "\n\n" + timing_markdown(seconds)
  with open(os.path.join(args.out, "demo_results.md"), "w") as f:
    f.write("# Demo results\n\n" + table + "\n")
  with open(os.path.join(args.out, "demo_results.json"), "w") as f:
    json.dump(dict(rows=rows, seconds=seconds), f, indent=1)
  print("\n" + table)
  print(f"\nwritten to {os.path.join(args.out, 'demo_results.md')}")
  return 1 if failed else 0


if __name__ == "__main__":
  raise SystemExit(main())
