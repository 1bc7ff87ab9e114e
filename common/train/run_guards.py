"""The two guards that keep a run from being lost: one run per workdir, and a resume that fits.

1. `WorkdirLock`: a run holds an exclusive `flock` on `<workdir>/run.lock` for its whole life,
   and writes its host, pid and start time into the file. A second run on the same workdir
   stops before it writes anything and names the holder. The kernel drops the lock when its
   process dies, even by kill -9, so the lock of a killed run is stale by construction and is
   taken over (with a log line naming the run that left it), and resuming after a crash works.
2. `check_resume`: before a checkpoint is restored, the config saved beside it is compared
   with this run's config. A changed model (or any change that gives the state other shapes)
   is one error naming the differing fields and the ways out; it is never called damage, so
   `--restore_fallback` never moves a good checkpoint aside because the config changed.

On several processes, process 0 decides both (`process0_decides`) and every process raises
the same error, so a multi-host run stops as one.
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import json
import logging
import os
import socket
from typing import Any, Callable

import jax
import numpy as np

LOCK_NAME = "run.lock"
# config.model fields that choose how the same function is computed, not which function:
# a resume on another machine may change them.
NOT_A_MODEL_CHANGE = ("attention_impl", "dtype", "remat_policy")


class GuardError(RuntimeError):
  """A run must not start: the message says why and what to do."""


class WorkdirBusy(GuardError):
  """Another live run holds the workdir."""


class ConfigChanged(GuardError):
  """The workdir's checkpoints were written by a run with another model config."""


_KINDS = (GuardError, WorkdirBusy, ConfigChanged)


def process0_decides(check: Callable[[], Any]) -> Any:
  """Runs `check` on process 0; a GuardError there is raised on every process, same message.

  Returns `check()`'s result on process 0 and None elsewhere.
  """
  if jax.process_count() == 1:
    return check()
  from jax.experimental import multihost_utils
  result, kind, text = None, 0, b""
  if jax.process_index() == 0:
    try:
      result = check()
    except GuardError as e:
      kind, text = _KINDS.index(type(e)) + 1, str(e).encode()[:8000]
  buf = np.zeros(8192, np.uint8)
  buf[0] = kind
  buf[1:1 + len(text)] = np.frombuffer(text, np.uint8)
  buf = np.asarray(multihost_utils.broadcast_one_to_all(buf))
  if buf[0]:
    raise _KINDS[int(buf[0]) - 1](bytes(buf[1:]).rstrip(b"\0").decode(errors="replace"))
  return result


class WorkdirLock:
  """An exclusive lock on a workdir, held from `acquire` until `release` or process death."""

  def __init__(self, workdir: str):
    self.path = os.path.join(os.path.abspath(workdir), LOCK_NAME)
    self._fd: int | None = None

  def acquire(self) -> None:
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EAGAIN, errno.EACCES):
        os.close(fd)
        logging.warning("cannot lock %s (%s): this filesystem has no file locks, so nothing stops "
                        "a second run on the same workdir.", self.path, e.strerror)
        return
      holder = _read_holder(fd)
      os.close(fd)
      raise WorkdirBusy(
          f"--workdir {os.path.dirname(self.path)} is in use by another run "
          f"({_describe(holder)}); wait for it to finish, stop it, or choose another --workdir.")
    stale = _read_holder(fd)
    if stale:
      logging.warning("taking over the workdir lock left by a run that ended without releasing it "
                      "(%s).", _describe(stale))
    me = {"host": socket.gethostname(), "pid": os.getpid(),
          "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    os.fsync(fd)
    self._fd = fd

  def release(self) -> None:
    if self._fd is None:
      return
    os.ftruncate(self._fd, 0)  # empty = released cleanly; a killed run leaves its holder behind
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)
    self._fd = None


def _read_holder(fd: int) -> dict:
  try:
    data = os.pread(fd, 4096, 0)
    return json.loads(data) if data.strip() else {}
  except (OSError, ValueError):
    return {}


def _describe(holder: dict) -> str:
  if not holder:
    return "holder unknown"
  return f"host {holder.get('host')}, pid {holder.get('pid')}, started {holder.get('started')}"


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out
  return {prefix: tree}


def config_diff(saved: dict, current: dict) -> list[tuple[str, Any, Any]]:
  """[(dotted field, saved value, current value)] for every field that differs."""
  a, b = _flatten(saved), _flatten(current)
  missing = object()
  rows = []
  for key in sorted(set(a) | set(b)):
    va, vb = a.get(key, missing), b.get(key, missing)
    if isinstance(va, tuple):
      va = list(va)
    if isinstance(vb, tuple):
      vb = list(vb)
    if va != vb:
      rows.append((key, "(unset)" if va is missing else va, "(unset)" if vb is missing else vb))
  return rows


def _is_model_change(field: str) -> bool:
  if field == "project":
    return True
  parts = field.split(".")
  return parts[0] == "model" and parts[-1] not in NOT_A_MODEL_CHANGE


def check_resume(workdir: str, step: int, saved_config: dict, config: dict,
                 shape_problems: list[str]) -> None:
  """Raises ConfigChanged when checkpoint `step` was written for another model.

  `shape_problems` lists state entries whose saved shape differs from this run's (empty when
  they all fit). Changes outside the model (steps, learning rate, data) are logged, not fatal.
  """
  diff = config_diff(saved_config, config)
  model = [d for d in diff if _is_model_change(d[0])]
  other = [d for d in diff if not _is_model_change(d[0])]
  if not model and not shape_problems:
    if other:
      logging.warning("resuming step %d with a changed config: %s", step, _fields(other))
    return
  what = (f"config fields {_fields(model or other)}" if (model or other)
          else "no config field, but the code builds other shapes")
  shapes = f"; state shapes differ: {'; '.join(shape_problems[:4])}" if shape_problems else ""
  raise ConfigChanged(
      f"--workdir {workdir} holds checkpoints (newest: step {step}) of a run with another model: "
      f"changed {what}{shapes}. Nothing was moved or overwritten. Either rerun with the run's "
      f"own config (saved in checkpoints/{step}/config), choose another --workdir, start from "
      f"those weights with --config.train.init_from={workdir} (same shapes only), or pass "
      "--start_fresh to set the checkpoints aside and train from step 0.")


def _fields(rows: list[tuple[str, Any, Any]], most: int = 6) -> str:
  text = ", ".join(f"{k}: {_short(a)} -> {_short(b)}" for k, a, b in rows[:most])
  return text + (f" (+{len(rows) - most} more)" if len(rows) > most else "")


def _short(value: Any) -> str:
  text = repr(value)
  return text if len(text) <= 60 else text[:57] + "..."
