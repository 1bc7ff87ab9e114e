"""Launching the toy trainer as subprocesses (multi-process runs, fault injection).

Subprocesses get their own XLA_FLAGS (the device count per process); they import the repo
through its editable install, as a user's `python projects/<name>/main.py` does.
"""
import os
import pathlib
import socket
import subprocess
import sys

import pytest

from common.train import toy_task

REPO = pathlib.Path(__file__).resolve().parents[2]
TOY_MAIN = str(REPO / "tests" / "integration" / "toy_main.py")
TOY_CONFIG = str(REPO / "common" / "train" / "toy_task.py")
MESH_2X4 = {"data": 2, "fsdp": 4, "model": 1, "expert": 1}
TIMEOUT_S = 300  # generous: CI shares 2 cores between everything


def toy_config(**train):
  """The toy run every integration test uses: 20 steps on a 2x4 mesh, a loss row per step."""
  c = toy_task.get_config()
  c.mesh.shape = dict(MESH_2X4)
  c.train.log_every = 1
  for k, v in train.items():
    c.train[k] = v
  return c


def toy_command(workdir, *flags) -> list[str]:
  return [sys.executable, TOY_MAIN, f"--config={TOY_CONFIG}", f"--workdir={workdir}",
          "--config.mesh.shape.data=2", "--config.mesh.shape.fsdp=4",
          "--config.train.log_every=1", *flags]


def cpu_env(devices: int, **extra) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu", **extra)
  # Keep the suite's other XLA flags (tests/conftest.py); replace only the device count.
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])
  return env


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def run_processes_rc(commands: list[list[str]], env: dict) -> list[tuple[int, str]]:
  """Runs the commands concurrently: [(exit code, output)] in the order given."""
  procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True) for c in commands]
  outputs = []
  try:
    for p in procs:
      outputs.append(p.communicate(timeout=TIMEOUT_S)[0])
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  return [(p.returncode, out) for p, out in zip(procs, outputs)]


def run_processes(commands: list[list[str]], env: dict) -> list[str]:
  """Runs the commands concurrently; fails the test with their output if any fails."""
  results = run_processes_rc(commands, env)
  for i, (rc, out) in enumerate(results):
    if rc:
      pytest.fail(f"process {i} exited with {rc}:\n{out[-4000:]}")
  return [out for _, out in results]
