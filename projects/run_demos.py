"""The main job: every project's demo reproduction, then one results table.

  python -m projects.run_demos [--out results] [--only lazy_neuron,svit] [--quick] [--jobs 2]

A project takes part by having `projects/<name>/demo.py` with
`run(out_dir: str, *, quick: bool) -> list[dict]`; each row has the keys of `COLUMNS`
("paper" is what the paper claims, "measured" what this run measured). The table is printed
and written to `<out>/demo_results.md` (and `.json`: {rows, seconds, wall_s}). A demo that sets
`IN_MAIN_JOB = False` (with a reason in `NOT_IN_MAIN_JOB_BECAUSE`) runs only when named in
`--only`, e.g. while its CPU cost is still far beyond the main job's budget. Each demo's wall
time (with the datasets it builds and the programs it compiles) ends the table, beside the total,
so that a run shows where the main job's 90-minute budget goes.

Demos run `--jobs` at a time (default: 2 where this process may use 2 or more CPUs and jax's
backend is the CPU; one at a time on a GPU or TPU host), each in a
process of its own pinned to its share of the CPUs, longest first (`MAIN_JOB_MINUTES` in a
demo.py: its wall minutes in the last serial main job), its output in `<out>/<name>.log`. Why:
XLA:CPU keeps two threads only partly busy on the demos' small models, so two pinned
single-thread processes train more steps per second in total than one two-thread process, and
their compiles overlap: the main job took 45.6 min against ~53 min one demo at a time on a
2-core VM (README, eighth run). `--jobs 1` runs them one after another in this process.

Compiled programs are kept in XLA's persistent cache (`<out>/xla_cache`; `--xla_cache ''` for
none): runs that share a model (a demo's seeds and variants) can reuse each other's compiled
programs, and a re-run main job recompiles only what changed.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import queue
import subprocess
import sys
import threading
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


def timing_markdown(seconds: dict[str, float], wall: float | None = None) -> str:
  """The wall-time table in minutes: one row per demo, then the job's total (`wall`, where
  demos ran at once; otherwise their sum) and, where they differ, the demos' sum."""
  lines = ["| demo | wall time |", "|---|---|"]
  lines += [f"| {name} | {t / 60:.1f} min |" for name, t in seconds.items()]
  lines.append(f"| total | {(sum(seconds.values()) if wall is None else wall) / 60:.1f} min |")
  if wall is not None:
    lines.append(f"| sum of the demos (they ran at once) | {sum(seconds.values()) / 60:.1f} min |")
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


def run_here(names: list[str], out: str, quick: bool):
  """Runs the demos `names` one after another in this process: (rows, failed names, seconds)."""
  rows, failed, seconds = [], [], {}
  for name in names:
    start = time.time()
    print(f"=== {name}: demo ===", flush=True)
    try:
      demo = importlib.import_module(f"projects.{name}.demo")
      rows += demo.run(os.path.join(out, name), quick=quick)
    except Exception:  # one broken demo must not hide the others' results
      traceback.print_exc()
      failed.append(name)
      rows.append(_failed_row(name))
    seconds[name] = time.time() - start
    print(f"=== {name}: {seconds[name]:.0f}s ===", flush=True)
  return rows, failed, seconds


def _failed_row(name: str) -> dict:
  return dict(project=name, experiment="demo", metric="status", paper="",
              measured="FAILED (see log)")


def cpu_lanes(jobs: int) -> list[set[int]]:
  """`jobs` disjoint, contiguous shares of the CPUs this process may use (fewer if it has
  fewer CPUs)."""
  cpus = sorted(os.sched_getaffinity(0))
  jobs = max(1, min(jobs, len(cpus)))
  size, extra = divmod(len(cpus), jobs)
  lanes, start = [], 0
  for i in range(jobs):
    end = start + size + (i < extra)
    lanes.append(set(cpus[start:end]))
    start = end
  return lanes


def accelerator_backend() -> str | None:
  """jax's default backend where it is not the CPU, asked in a throwaway process, so that this
  one holds no device (a TPU is held by one process at a time)."""
  out = subprocess.run([sys.executable, "-c", "import jax; print(jax.default_backend())"],
                       capture_output=True, text=True, check=False)
  lines = out.stdout.split()
  return lines[-1] if out.returncode == 0 and lines and lines[-1] != "cpu" else None


def expected_minutes(name: str) -> float:
  return float(getattr(importlib.import_module(f"projects.{name}.demo"), "MAIN_JOB_MINUTES", 0.0))


def worker_command(name: str, out: str, quick: bool, cache: str, rows_json: str,
                   cpus: set[int]) -> list[str]:
  """The command line that runs demo `name` alone on `cpus` and writes its rows to `rows_json`."""
  return [sys.executable, "-m", "projects.run_demos", "--only", name, "--out", out,
          "--xla_cache", cache, "--jobs", "1", "--rows_json", rows_json,
          "--cpus", ",".join(map(str, sorted(cpus)))] + (["--quick"] if quick else [])


def run_in_lanes(names: list[str], out: str, quick: bool, cache: str, lanes: list[set[int]]):
  """Runs the demos `names` in worker processes, one per lane at a time, each pinned to its
  lane's CPUs, the longest expected first: (rows in `names` order, failed names, seconds)."""
  todo = queue.Queue()
  for name in sorted(names, key=expected_minutes, reverse=True):
    todo.put(name)
  done, printing = {}, threading.Lock()

  def say(text: str) -> None:
    with printing:   # one lane's line at a time
      print(text, flush=True)

  def lane(cpus: set[int]) -> None:
    while True:
      try:
        name = todo.get_nowait()
      except queue.Empty:
        return
      log = os.path.join(out, f"{name}.log")
      rows_json = os.path.join(out, f"{name}.rows.json")
      if os.path.exists(rows_json):
        os.remove(rows_json)
      say(f"=== {name}: demo, on CPUs {sorted(cpus)}, output in {log} ===")
      start = time.time()
      with open(log, "w") as f:
        rc = subprocess.run(
            worker_command(name, out, quick, cache, rows_json, cpus), stdout=f,
            stderr=subprocess.STDOUT,
            # Several processes may share one accelerator: none takes most of its memory.
            env=dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")).returncode
      seconds = time.time() - start
      try:
        with open(rows_json) as f:
          rows = json.load(f)["rows"]
      except (OSError, ValueError, KeyError):
        rows = [_failed_row(name)]
      failed = rc != 0   # a worker exits 1 when its demo failed (main's return)
      done[name] = (rows, failed, seconds)
      say(f"=== {name}: {seconds:.0f}s{', FAILED, see ' + log if failed else ''} ===")

  threads = [threading.Thread(target=lane, args=(cpus,)) for cpus in lanes]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  rows = [r for name in names for r in done[name][0]]
  failed = [name for name in names if done[name][1]]
  return rows, failed, {name: done[name][2] for name in names}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="results", help="directory for workdirs and the table")
  parser.add_argument("--only", default="", help="comma-separated project names")
  parser.add_argument("--quick", action="store_true", help="seconds-long settings (smoke test)")
  parser.add_argument("--xla_cache", default=None,
                      help="persistent compilation cache folder (default <out>/xla_cache; '' off)")
  parser.add_argument("--jobs", type=int, default=2,
                      help="demos run at once, each in its own process on its share of the CPUs "
                      "(1: one after another, in this process)")
  # A lane's worker: where its rows go, and its CPUs.
  parser.add_argument("--rows_json", default="", help=argparse.SUPPRESS)
  parser.add_argument("--cpus", default="", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.cpus:
    # Pinned before XLA's CPU client exists, so that its thread pool is sized to these CPUs.
    os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
  if args.jobs < 1:
    parser.error(f"--jobs {args.jobs}: give 1 or more")
  cache = os.path.join(args.out, "xla_cache") if args.xla_cache is None else args.xla_cache
  names = [n for n in args.only.split(",") if n] or [n for n in discover() if in_main_job(n)]
  os.makedirs(args.out, exist_ok=True)
  lanes = cpu_lanes(min(args.jobs, len(names)))
  if len(lanes) > 1 and (backend := accelerator_backend()):
    print(f"=== one demo at a time: jax's backend here is {backend}, not the CPU ===", flush=True)
    lanes = cpu_lanes(1)
  start = time.time()
  if len(lanes) > 1:
    rows, failed, seconds = run_in_lanes(names, args.out, args.quick, cache, lanes)
  else:
    if cache:
      import jax  # pylint: disable=g-import-not-at-top
      jax.config.update("jax_compilation_cache_dir", os.path.abspath(cache))
    rows, failed, seconds = run_here(names, args.out, args.quick)
  if args.rows_json:
    with open(args.rows_json, "w") as f:
      json.dump(dict(rows=rows, seconds=seconds), f, indent=1)
    return 1 if failed else 0
  wall = time.time() - start
  table = to_markdown(rows) + "\n\n" + timing_markdown(seconds, wall if len(lanes) > 1 else None)
  with open(os.path.join(args.out, "demo_results.md"), "w") as f:
    f.write("# Demo results\n\n" + table + "\n")
  with open(os.path.join(args.out, "demo_results.json"), "w") as f:
    json.dump(dict(rows=rows, seconds=seconds, wall_s=wall), f, indent=1)
  print("\n" + table)
  print(f"\nwritten to {os.path.join(args.out, 'demo_results.md')}")
  return 1 if failed else 0


if __name__ == "__main__":
  raise SystemExit(main())
