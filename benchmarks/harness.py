"""What the benchmark scripts share: worker subprocesses, timing loops, byte and slope formats.

Scripts, never tests: nothing here asserts anything about speed.
"""
from __future__ import annotations

import json
import math
import pathlib
import resource
import subprocess
import sys
import time


def run_worker(script: str, cfg: dict, env: dict, timeout: float | None = None, *,
               python: str | None = None) -> dict:
  """Runs `python script --worker JSON(cfg)` in a fresh process (so its peak RSS is its own).

  `python` is the interpreter (default: this one), e.g. another venv's for a PyTorch reference.
  Returns the dict the worker prints as JSON on its last stdout line, or {'error': its last
  non-blank output line} when it fails, cannot start or runs past `timeout` seconds.
  """
  cmd = [python or sys.executable, script, "--worker", json.dumps(cfg)]
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False,
                          timeout=timeout)
  except subprocess.TimeoutExpired:
    return dict(error=f"timed out after {timeout:.0f} s (--worker-timeout)")
  except OSError as e:
    return dict(error=f"could not start {cmd[0]}: {e.strerror or e}")
  if proc.returncode != 0:
    lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
    return dict(error=lines[-1][:200] if lines else f"exit {proc.returncode}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def timed_loop(call, *, repeats: int, warmups: int = 1) -> tuple[float, list[float]]:
  """(seconds of the first of `warmups` untimed calls, [seconds of each of `repeats` calls]).

  `call()` must return only when its work is done (block_until_ready, cuda synchronize). Imports
  nothing, so a worker under another interpreter (a torch-only venv) can use it.
  """
  first = 0.0
  for i in range(warmups):
    start = time.perf_counter()
    call()
    if i == 0:
      first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  return first, times


def timed_calls(fn, *args, repeats: int) -> tuple[float, list[float]]:
  """(seconds of a first, warm-up call, [seconds of each of `repeats` further calls]).

  Every call is waited for with jax.block_until_ready, so the times are of the computation.
  """
  import jax  # pylint: disable=g-import-not-at-top  (the driver processes need no jax)

  return timed_loop(lambda: jax.block_until_ready(fn(*args)), repeats=repeats)


def peak_rss_bytes() -> int:
  """This process's peak resident set size."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fmt_bytes(n) -> str:
  if n is None:
    return "-"
  for unit in ("B", "KiB", "MiB", "GiB"):
    if n < 1024 or unit == "GiB":
      return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
    n /= 1024
  return str(n)


def loglog_slope(xs, ys):
  """Least-squares slope of log(y) against log(x) over the positive points; None if < 2."""
  pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if y is not None and y > 0]
  if len(pts) < 2:
    return None
  mx = sum(p[0] for p in pts) / len(pts)
  my = sum(p[1] for p in pts) / len(pts)
  sxx = sum((p[0] - mx) ** 2 for p in pts)
  return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def cpu_model() -> str:
  """The CPU's model name from /proc/cpuinfo ('unknown CPU' elsewhere)."""
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return "unknown CPU"
