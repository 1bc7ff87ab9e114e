"""Faults around checkpoints: kill -9 in the middle of a save, corrupted and truncated files.

Each test damages a run the way the world does and checks that the next start restores only
complete, readable state, says exactly what is broken, and can step back to the previous step.
"""
import logging
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from common.train import checkpoint, metrics, toy_task, trainer
from tests.integration.launch import (TIMEOUT_S, cpu_env, run_processes, run_processes_rc,
                                      toy_command, toy_config)


def _losses(workdir):
  rows = metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _assert_steps_match(workdir, ref_dir, steps):
  got, ref = _losses(workdir), _losses(ref_dir)
  assert sorted(got) == list(steps)
  np.testing.assert_allclose([got[s] for s in steps], [ref[s] for s in steps], rtol=1e-5)


def test_kill_9_during_save_resumes_from_last_complete_step(reference, tmp_path, caplog):
  ref_dir, _ = reference
  workdir = str(tmp_path)
  env = cpu_env(devices=8, TOY_HANG_IN_SAVE_AT="20")
  proc = subprocess.Popen(toy_command(workdir), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  marker = os.path.join(workdir, "hanging_in_save")
  deadline = time.monotonic() + TIMEOUT_S
  try:
    while not os.path.exists(marker):
      if proc.poll() is not None or time.monotonic() > deadline:
        pytest.fail(f"the run never reached the hooked save:\n{proc.communicate()[0][-4000:]}")
      time.sleep(0.2)
    ckpt_dir = os.path.join(workdir, "checkpoints")
    half_written = [d for d in os.listdir(ckpt_dir) if not d.isdigit()]
    assert half_written, os.listdir(ckpt_dir)  # step 20's temporary directory, mid-save
    # The same command again, while the first run lives: refused, naming the live run, and its
    # half-written save is left alone (a second start would have cleaned it up under it).
    ((rc, out),) = run_processes_rc([toy_command(workdir)], env=cpu_env(devices=8))
    assert rc == 2 and f"pid {proc.pid}" in out, out[-3000:]
    assert [d for d in os.listdir(ckpt_dir) if not d.isdigit()] == half_written
    proc.send_signal(signal.SIGKILL)
  finally:
    if proc.poll() is None:
      proc.kill()
    proc.communicate()
  assert proc.returncode == -signal.SIGKILL
  # The half-written step is not a step: the next start restores step 10 and redoes 11-20.
  assert checkpoint.Checkpointer(workdir).all_steps() == [10]
  os.remove(os.path.join(workdir, "metrics.jsonl"))
  c = toy_config()
  with caplog.at_level(logging.WARNING):  # the killed run's lock is stale: taken over
    trainer.train(c, workdir, task=toy_task.ToyTask(c))
  assert f"pid {proc.pid}" in caplog.text and "taking over" in caplog.text
  _assert_steps_match(workdir, ref_dir, range(11, 21))
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["10", "20"]


def _damaged_copy(ref_dir, dest, how):
  shutil.copytree(os.path.join(ref_dir, "checkpoints"), os.path.join(dest, "checkpoints"))
  state = os.path.join(dest, "checkpoints", "20", "state")
  if how == "corrupted":  # flipped bytes in the largest array data file
    files = [os.path.join(root, f) for root, _, fs in os.walk(os.path.join(state, "d"))
             for f in fs]
    path = max(files, key=os.path.getsize)
    with open(path, "r+b") as f:
      f.seek(os.path.getsize(path) // 2)
      f.write(b"\xff\xfe\xfd\xfc")
  else:  # a truncated metadata file, as a full disk or a killed copy leaves it
    path = os.path.join(state, "_METADATA")
    with open(path, "r+b") as f:
      f.truncate(40)
  return path


# A failed restore leaves no unraisable exception behind (common.train.orphaned_reads).
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("how", ["corrupted", "truncated"])
def test_damaged_checkpoint_names_step_and_file_and_falls_back(reference, tmp_path, how):
  ref_dir, c = reference
  bad = _damaged_copy(ref_dir, str(tmp_path), how)
  run = trainer.setup(c, toy_task.ToyTask(c))
  ckpt = checkpoint.Checkpointer(str(tmp_path), async_save=False)
  with pytest.raises(checkpoint.CheckpointError) as info:
    ckpt.restore_latest(trainer.restore_target(run))
  message = str(info.value)
  assert "checkpoint step 20 could not be restored" in message and bad in message, message
  assert "--restore_fallback" in message
  step, state = ckpt.restore_latest(trainer.restore_target(run), fallback=True)
  assert step == 10 and state is not None
  # The unreadable step is kept for inspection, out of the way of the resumed run's saves.
  assert ckpt.all_steps() == [10]
  assert os.listdir(tmp_path / "checkpoints_unreadable") == ["20"]
  ckpt.close()


def test_damaged_checkpoint_is_one_line_from_the_command(reference, tmp_path):
  ref_dir, _ = reference
  bad = _damaged_copy(ref_dir, str(tmp_path), "corrupted")
  ((rc, out),) = run_processes_rc([toy_command(str(tmp_path))], env=cpu_env(8))
  assert rc == 2, out[-3000:]
  (line,) = [line for line in out.splitlines() if line.startswith("error:")]
  assert "checkpoint step 20 could not be restored" in line and bad in line, line
  # Orbax's reads still in flight when the restore failed print nothing (they used to print
  # one 'Event loop is closed' traceback each).
  assert "Traceback" not in out and "Event loop is closed" not in out, out[-3000:]


def test_restore_fallback_flag_resumes_from_previous_step(reference, tmp_path):
  ref_dir, _ = reference
  _damaged_copy(ref_dir, str(tmp_path), "corrupted")
  (out,) = run_processes([toy_command(str(tmp_path), "--restore_fallback")], env=cpu_env(8))
  assert "falling back to the previous checkpoint" in out
  assert "Traceback" not in out and "Event loop is closed" not in out, out[-3000:]
  _assert_steps_match(str(tmp_path), ref_dir, range(11, 21))
  assert checkpoint.Checkpointer(str(tmp_path)).all_steps() == [10, 20]
