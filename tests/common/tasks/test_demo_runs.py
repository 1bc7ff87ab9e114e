"""Demo runs are reused once finished, exports are redone only when no checkpoint exists, a
shared run is trained once when two demos ask for it at the same time, and a checkpoint restored
into another model's state says so (not "damaged")."""
import json
import os
import threading
import time

import jax
import jax.numpy as jnp
import pytest

from common.tasks import demo_runs
from common.train import checkpoint as ckpt_lib
from common.train import toy_task, trainer


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  config = toy_task.get_config()
  config.train.num_steps = config.train.checkpoint_every = 2
  workdir = str(tmp_path_factory.mktemp("toy_run"))
  return config, workdir, demo_runs.train_or_reuse(config, workdir, task=toy_task.ToyTask(config))


def test_finished_runs_and_exports_are_reused(finished, tmp_path, monkeypatch):
  config, workdir, first = finished
  assert first["step"] == 2

  def fail(*args, **kwargs):
    raise AssertionError("a finished run was trained again")
  monkeypatch.setattr(trainer, "train", fail)
  assert demo_runs.train_or_reuse(config, workdir) == first

  calls = []
  demo_runs.export_once(workdir, lambda: calls.append("finished"))   # has step 2: skipped
  (tmp_path / "interrupted" / "checkpoints").mkdir(parents=True)     # no finished step
  demo_runs.export_once(str(tmp_path / "interrupted"), lambda: calls.append("interrupted"))
  assert calls == ["interrupted"]


def test_restoring_into_another_model_names_the_config(finished):
  config, workdir, _ = finished
  run = trainer.setup(config, toy_task.ToyTask(config), check_data=False)
  target = trainer.restore_target(run)
  target["params"]["extra"] = jax.ShapeDtypeStruct((3,), jnp.float32)   # a different model
  ckpt = ckpt_lib.Checkpointer(workdir, read_only=True, async_save=False)
  with pytest.raises(ckpt_lib.CheckpointError, match="holds a different model.*config the run"):
    ckpt.restore(2, target)


def test_a_shared_run_asked_for_at_once_is_trained_once(tmp_path, monkeypatch):
  """Two demos running at once (run_demos --jobs) take turns: the second reuses the first's run."""
  config = toy_task.get_config()
  trained = []

  def train(config, workdir, **kwargs):
    trained.append(workdir)
    time.sleep(0.3)   # the other demo asks meanwhile
    with open(os.path.join(workdir, "final_metrics.json"), "w") as f:
      json.dump({"step": 7}, f)

  monkeypatch.setattr(trainer, "train", train)
  results = []
  threads = [threading.Thread(target=lambda d=d: results.append(demo_runs.train_shared(
      config, str(tmp_path / d), "shared_baseline", local_name="own"))) for d in ("a", "b")]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert trained == [str(tmp_path / "shared_baseline")]
  assert results == [{"step": 7}, {"step": 7}]
