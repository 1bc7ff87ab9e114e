"""The trainer on the toy task: learning, exact resume, preemption, non-finite guards, sharding."""
import os
import signal

import jax
import numpy as np
import pytest

from common.train import checkpoint, metrics, step as step_lib, toy_task, trainer


def _config(**train):
  c = toy_task.get_config()
  for k, v in train.items():
    c.train[k] = v
  return c


def _params(workdir, config):
  run, state, _ = trainer.restore_for_eval(config, workdir, task=toy_task.ToyTask(config))
  return jax.device_get(state)


class _Recording(toy_task.ToyTask):
  """Records the example ids of every batch the trainer draws (one batch per step)."""

  def __init__(self, config, seen):
    super().__init__(config)
    self.seen = seen

  def train_data(self, **kw):
    return _RecordIds(super().train_data(**kw), self.seen)


class _RecordIds:

  def __init__(self, it, seen):
    self.it, self.seen = it, seen

  def __next__(self):
    batch = next(self.it)
    self.seen.append(batch["id"].tolist())
    return batch

  def get_state(self):
    return self.it.get_state()

  def set_state(self, s):
    self.it.set_state(s)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
  """20 steps in one go; several tests compare against it. Returns also the ids per step."""
  workdir = str(tmp_path_factory.mktemp("straight"))
  c = _config()
  ids = []
  final = trainer.train(c, workdir, task=_Recording(c, ids))
  return workdir, c, final, ids


def test_loss_falls_and_metrics_are_written(straight_run):
  workdir, _, final, _ = straight_run
  rows = [r for r in metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl")) if "loss" in r]
  assert [r["step"] for r in rows] == [5, 10, 15, 20]
  assert rows[-1]["loss"] < rows[0]["loss"]
  for key in ("grad_norm", "learning_rate", "examples_per_s", "step_time_s", "accuracy"):
    assert np.isfinite(rows[-1][key]), key
  assert final["eval/loss/test/accuracy"] > 0.4  # 4 classes: chance is 0.25
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  assert os.path.exists(os.path.join(workdir, "final_metrics.json"))


def test_resume_is_exact(straight_run, tmp_path):
  workdir, c, _, _ = straight_run
  resumed = str(tmp_path)
  trainer.train(c, resumed, task=toy_task.ToyTask(c), stop_after=10)
  assert checkpoint.Checkpointer(resumed).all_steps() == [10]
  trainer.train(c, resumed, task=toy_task.ToyTask(c))
  a, b = _params(workdir, c), _params(resumed, c)
  jax.tree.map(np.testing.assert_array_equal, a, b)


class _SigtermAt:
  """Wraps a data iterator and sends SIGTERM to this process when batch `k` is drawn."""

  def __init__(self, it, k):
    self.it, self.k, self.n = it, k, 0

  def __next__(self):
    self.n += 1
    if self.n == self.k:
      os.kill(os.getpid(), signal.SIGTERM)
    return next(self.it)

  def get_state(self):
    return self.it.get_state()

  def set_state(self, s):
    self.it.set_state(s)


def test_sigterm_mid_epoch_saves_and_resumes_the_same_data_order(straight_run, tmp_path):
  workdir, c, _, straight_ids = straight_run
  seen = []

  class Preempted(_Recording):
    def train_data(self, **kw):
      return _SigtermAt(super().train_data(**kw), 7)

  # 384 training examples / 32 = 12 steps per epoch: step 7 is mid-epoch, and the resumed run
  # crosses into the next (reshuffled) epoch.
  trainer.train(c, str(tmp_path), task=Preempted(c, seen))
  # SIGTERM arrived while drawing batch 7, so step 7 completes and is saved.
  assert checkpoint.Checkpointer(str(tmp_path)).all_steps() == [7]
  trainer.train(c, str(tmp_path), task=_Recording(c, seen))
  # No example skipped or repeated: the ids seen across the interruption are the straight run's.
  assert seen == straight_ids and len(seen) == 20
  jax.tree.map(np.testing.assert_array_equal, _params(workdir, c), _params(str(tmp_path), c))


def test_nonfinite_stop_names_the_step(tmp_path):
  c = _config()
  c.model.nan_at_step = 0
  c.model.nan_threshold = 0.05  # the running mean crosses this after a few steps
  with pytest.raises(trainer.NonFiniteError,
                     match=r"non-finite loss at step \d+ \(metric 'loss' is NaN or Inf\)"):
    trainer.train(c, str(tmp_path), task=toy_task.ToyTask(c))


def test_nonfinite_skip_keeps_going(tmp_path):
  c = _config(nonfinite="skip")
  c.model.nan_at_step = 0
  c.model.nan_threshold = 0.05
  trainer.train(c, str(tmp_path), task=toy_task.ToyTask(c))
  state = _params(str(tmp_path), c)
  assert int(state["health"]["skipped_steps"]) > 0
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state["params"]))


@pytest.mark.parametrize("nonfinite,branch", [("skip", True), ("stop", True), ("skip", False)])
def test_skipped_step_keeps_every_held_tree(nonfinite, branch):
  """A step with a non-finite loss leaves parameters, optimiser moments, model state (the
  running mean its forward pass moved) and EMA bit-identical; a finite step changes them. Both
  forms of the guard (`step.guarded_update`: lax.cond, jnp.where) alike."""
  c = _config(nonfinite=nonfinite)
  c.optimizer.ema_decay = 0.5
  c.optimizer.warmup_steps = 0  # the schedule counts applied steps: warm-up would start at lr 0
  run = trainer.setup(c, task=toy_task.ToyTask(c))
  step = jax.jit(step_lib.make_train_step(
      run.task, run.spec, run.tx, run.lr_schedule, grad_accum_steps=1, nonfinite=nonfinite,
      ema_decay=0.5, seed=0, branch=branch))
  batch = next(run.task.train_data(seed=0, process_index=0, process_count=1, batch_size=32))
  batch = {k: v for k, v in batch.items() if k != "id"}
  held = ("params", "opt_state", "model_state", "ema_params")
  state = trainer.init_state(run)
  before = jax.device_get({k: state[k] for k in held})
  state, _ = step(state, dict(batch, x=np.full_like(batch["x"], np.nan)))
  after = jax.device_get({k: state[k] for k in held})
  jax.tree.map(np.testing.assert_array_equal, after, before)
  assert int(state["step"]) == 1 and int(state["health"]["skipped_steps"]) == 1
  assert int(state["health"]["first_nonfinite_step"]) == 0
  if nonfinite == "skip":  # "stop" applies nothing after its first bad step
    state, _ = step(state, batch)
    moved = jax.device_get({k: state[k] for k in held})
    for k in held:
      assert any(np.any(a != b) for a, b in zip(jax.tree.leaves(moved[k]),
                                                jax.tree.leaves(before[k]))), k


def test_grad_accumulation_matches_one_big_batch(tmp_path):
  c1 = _config(num_steps=3, checkpoint_every=3)
  c1.model.hidden = 16
  c2 = _config(num_steps=3, checkpoint_every=3, grad_accum_steps=4)
  c2.model.hidden = 16
  # Dropout draws and the running-mean update differ per micro-batch; compare without them.
  class NoDropout(toy_task.ToyTask):
    def build_model(self, rngs):
      m = super().build_model(rngs)
      m.dropout.rate = 0.0
      m.update_mean = False
      return m
  trainer.train(c1, str(tmp_path / "a"), task=NoDropout(c1))
  trainer.train(c2, str(tmp_path / "b"), task=NoDropout(c2))
  a = _params(str(tmp_path / "a"), c1)["params"]
  b = _params(str(tmp_path / "b"), c2)["params"]
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5), a, b)
