"""Two everyday mistakes cost no run: a changed config on resume, and two runs on one workdir.

A changed model config stops the run with one line naming the fields, moves nothing (with or
without --restore_fallback) and never starts from step 0 unless --start_fresh asks for it. A
second run on a busy workdir stops before writing anything and names the holder; on two
processes, both stop with the same line.
"""
import logging
import os
import shutil

import pytest

from common.train import checkpoint, metrics, run_guards, toy_task, trainer
from tests.integration.launch import cpu_env, free_port, run_processes_rc, toy_command, toy_config


def _copy_run(ref_dir, dest):
  for name in ("checkpoints", "metrics.jsonl"):
    src = os.path.join(ref_dir, name)
    (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, os.path.join(dest, name))
  return str(dest)


def _error_lines(out):
  return [line for line in out.splitlines() if line.startswith("error:")]


def _steps(workdir):
  return [r["step"] for r in metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
          if "loss" in r]


def test_changed_model_config_on_resume_moves_nothing(reference, tmp_path):
  ref_dir, _ = reference
  workdir = _copy_run(ref_dir, tmp_path)
  ckpt_dir = os.path.join(workdir, "checkpoints")
  before = sorted(os.listdir(ckpt_dir))
  for extra in ([], ["--restore_fallback"]):
    ((rc, out),) = run_processes_rc([toy_command(workdir, "--config.model.hidden=48", *extra)],
                                    env=cpu_env(8))
    assert rc == 2, out[-3000:]
    (line,) = _error_lines(out)
    assert "model.hidden: 32 -> 48" in line and "params/w1/kernel is (8, 32)" in line, line
    assert "--start_fresh" in line and "init_from" in line and "damaged" not in line
    assert "Traceback" not in out and "Event loop is closed" not in out
    assert sorted(os.listdir(ckpt_dir)) == before
    assert not os.path.exists(os.path.join(workdir, "checkpoints_unreadable"))
  assert _steps(workdir) == list(range(1, 21))  # the refused runs wrote no metrics

  c = toy_config()
  c.model.hidden = 48
  with pytest.raises(run_guards.ConfigChanged):
    trainer.train(c, workdir, task=toy_task.ToyTask(c), restore_fallback=True)
  # Asked for explicitly: the old run is set aside, whole, and training starts at step 0.
  final = trainer.train(c, workdir, task=toy_task.ToyTask(c), start_fresh=True)
  assert final and _steps(workdir) == list(range(1, 21))
  (aside,) = [d for d in os.listdir(workdir) if d.startswith("previous_")]
  assert sorted(os.listdir(os.path.join(workdir, aside, "checkpoints"))) == before


def test_changes_outside_the_model_resume_with_a_warning(reference, tmp_path, caplog):
  ref_dir, _ = reference
  workdir = _copy_run(ref_dir, tmp_path)
  c = toy_config(num_steps=22)
  with caplog.at_level(logging.WARNING):
    trainer.train(c, workdir, task=toy_task.ToyTask(c))
  assert "train.num_steps: 20 -> 22" in caplog.text
  assert _steps(workdir) == list(range(1, 23))


def test_no_readable_checkpoint_is_an_error_not_a_fresh_start(reference, tmp_path):
  ref_dir, c = reference
  workdir = _copy_run(ref_dir, tmp_path)
  for step in ("10", "20"):
    with open(os.path.join(workdir, "checkpoints", step, "state", "_METADATA"), "r+b") as f:
      f.truncate(40)
  run = trainer.setup(c, toy_task.ToyTask(c))
  ckpt = checkpoint.Checkpointer(workdir, async_save=False)
  with pytest.raises(checkpoint.CheckpointError, match="none of the checkpoints.*--start_fresh"):
    ckpt.restore_latest(trainer.restore_target(run), fallback=True)
  assert ckpt.all_steps() == [10, 20]  # nothing set aside
  ckpt.close()


def test_second_run_on_a_busy_workdir_stops_before_writing(tmp_path):
  holder = run_guards.WorkdirLock(str(tmp_path))
  holder.acquire()  # a live run: this test process
  try:
    ((rc, out),) = run_processes_rc([toy_command(str(tmp_path))], env=cpu_env(8))
    c = toy_config()
    with pytest.raises(run_guards.WorkdirBusy, match=f"pid {os.getpid()}"):
      trainer.train(c, str(tmp_path), task=toy_task.ToyTask(c))
  finally:
    holder.release()
  assert rc == 2, out[-3000:]
  (line,) = _error_lines(out)
  assert "is in use by another run" in line and f"pid {os.getpid()}" in line, line
  assert os.listdir(tmp_path) == [run_guards.LOCK_NAME]


def test_two_process_run_stops_as_one(reference, tmp_path):
  """Process 0 decides both guards; each process prints the same line and exits 2."""
  ref_dir, _ = reference
  busy = tmp_path / "busy"
  busy.mkdir()
  (tmp_path / "changed").mkdir()
  changed = _copy_run(ref_dir, tmp_path / "changed")
  holder = run_guards.WorkdirLock(str(busy))
  holder.acquire()
  try:
    for workdir, extra, expected in ((str(busy), [], "is in use by another run"),
                                     (changed, ["--config.model.hidden=48"], "model.hidden")):
      port = free_port()
      results = run_processes_rc(
          [toy_command(workdir, f"--coordinator_address=localhost:{port}", "--num_processes=2",
                       f"--process_id={i}", *extra) for i in range(2)], env=cpu_env(devices=4))
      lines = [_error_lines(out) for _, out in results]
      assert [rc for rc, _ in results] == [2, 2], [out[-2000:] for _, out in results]
      assert len(lines[0]) == 1 and lines[0] == lines[1] and expected in lines[0][0], lines
  finally:
    holder.release()
