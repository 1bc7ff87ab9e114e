"""What the benchmark scripts share: worker subprocesses, timing loops, byte and slope formats.

Scripts, never tests: nothing here asserts anything about speed.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time


ROOT = pathlib.Path(__file__).resolve().parents[1]


def _check_checkout() -> None:
  """Stops a benchmark script that would time another checkout's code.

  `python benchmarks/X.py` puts benchmarks/ on sys.path, not its checkout, so `benchmarks` (this
  module) and `common` may come from the editable install of another checkout, e.g. the main
  one when X.py is a git worktree's; the workers (PYTHONPATH=ROOT) would then run that code too.
  """
  script = getattr(sys.modules.get("__main__"), "__file__", None)
  if not script:
    return
  script = pathlib.Path(script).resolve()
  if script.parent.name == "benchmarks" and script.parents[1] != ROOT:
    sys.exit(f"error: {script} is in the checkout {script.parents[1]}, but its imports come from "
             f"{ROOT}; run it with PYTHONPATH={script.parents[1]} (or `python -m "
             f"benchmarks.{script.stem}` from {script.parents[1]}).")


_check_checkout()


def repo_env(env: dict | None = None) -> dict:
  """A copy of `env` (default: this process's) with the repository first on PYTHONPATH, so a
  worker started under any interpreter can import `benchmarks` and `common`."""
  env = dict(os.environ if env is None else env)
  env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
  return env


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


class Served:
  """A worker process that builds once, then times one call per request: runs in different
  processes (ours and a PyTorch reference) can then be interleaved A, B, A, B.

  Starts `python script --serve JSON(cfg)`; the worker side is `serve`. `info` is the worker's
  first reply (its setup facts and each mode's first, compiling call). `time(mode)` asks for one
  timed call and returns its seconds. Raises RuntimeError with the worker's last stderr line when
  it fails or exits.
  """

  def __init__(self, script: str, cfg: dict, env: dict, *, python: str | None = None):
    self._stderr = tempfile.TemporaryFile("w+")
    cmd = [python or sys.executable, script, "--serve", json.dumps(cfg)]
    try:
      self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=self._stderr, text=True, env=env)
    except OSError as e:
      raise RuntimeError(f"could not start {cmd[0]}: {e.strerror or e}") from None
    self.info = self._reply()

  def _reply(self) -> dict:
    line = self.proc.stdout.readline()
    if line:
      return json.loads(line)
    self.proc.wait()
    self._stderr.seek(0)
    lines = [ln.strip() for ln in self._stderr.read().splitlines() if ln.strip()]
    if not lines:
      raise RuntimeError(f"worker exited {self.proc.returncode}")
    # The error and, from a traceback, its innermost frame (a GPU run once said only
    # "TypeError: 'NoneType' object is not subscriptable").
    frames = [ln for ln in lines if ln.startswith('File "')]
    raise RuntimeError(lines[-1][:200] + (f" ({frames[-1][:200]})" if frames else ""))

  def time(self, mode: str) -> float:
    self.proc.stdin.write(mode + "\n")
    self.proc.stdin.flush()
    return self._reply()["s"]

  def close(self) -> None:
    if self.proc.poll() is None:
      self.proc.stdin.close()
      self.proc.wait(timeout=120)
    self._stderr.close()


def serve(setup) -> None:
  """The worker side of `Served`: `setup(cfg) -> (info, {mode: call})`, then one timed call per
  mode named on stdin, each answered by a JSON line {"s": seconds}.

  Every mode is called twice untimed first (compilation; allocator and oneDNN warm-up, which
  makes torch's second call still slow), the first call's seconds reported in info["first_s"].
  The replies go to the original stdout; anything the models print goes to stderr, so it cannot
  corrupt the protocol. Imports nothing, so a torch-only venv can use it.
  """
  out = os.fdopen(os.dup(1), "w")
  os.dup2(2, 1)
  cfg = json.loads(sys.argv[sys.argv.index("--serve") + 1])
  info, calls = setup(cfg)
  info["first_s"] = {mode: timed_loop(call, repeats=0, warmups=2)[0]
                     for mode, call in calls.items()}
  print(json.dumps(info), file=out, flush=True)
  for line in sys.stdin:
    start = time.perf_counter()
    calls[line.strip()]()
    print(json.dumps({"s": time.perf_counter() - start}), file=out, flush=True)


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
