"""Bad configs fail before anything is compiled, naming the field and the fix."""
import os
import shutil

import jax
import pytest

from common.train import config_checks, optim, toy_task, trainer


def _run(c, tmp_path):
  return trainer.train(c, str(tmp_path), task=toy_task.ToyTask(c))


def test_unknown_field(tmp_path):
  c = toy_task.get_config()
  c.train.num_step = 5  # typo of num_steps
  with pytest.raises(ValueError, match=r"unknown field\(s\) config.train.num_step"):
    _run(c, tmp_path)


@pytest.mark.parametrize("field,value,match", [
    ("batch_size", 0, r"config.train.batch_size=0: must be an integer >= 1"),
    ("nonfinite", "ignore", r"config.train.nonfinite='ignore'; allowed"),
    ("grad_accum_steps", 3, r"not divisible by config.train.grad_accum_steps=3"),
])
def test_bad_train_values(tmp_path, field, value, match):
  c = toy_task.get_config()
  c.train[field] = value
  with pytest.raises(ValueError, match=match):
    _run(c, tmp_path)


def test_wrong_type_is_refused_at_assignment():
  # ConfigDict keeps each field's type, so `--config.train.num_steps=2.5` fails at parse time.
  c = toy_task.get_config()
  with pytest.raises(TypeError, match="num_steps"):
    c.train.num_steps = 2.5


def test_bad_optimizer(tmp_path):
  c = toy_task.get_config()
  c.optimizer.name = "adamax"
  with pytest.raises(ValueError, match=r"config.optimizer.name='adamax'; allowed"):
    _run(c, tmp_path)


def test_mesh_that_does_not_divide_devices(tmp_path):
  c = toy_task.get_config()
  c.mesh.shape = {"data": 3, "fsdp": -1, "model": 1, "expert": 1}
  with pytest.raises(ValueError, match="does not divide the 8 available devices"):
    _run(c, tmp_path)


def test_batch_not_divisible_by_data_shards(tmp_path):
  c = toy_task.get_config()
  c.train.batch_size = 12  # 8 data shards
  with pytest.raises(ValueError, match="not divisible by the 8 data shards"):
    _run(c, tmp_path)


def test_unwritable_workdir(tmp_path):
  ro = tmp_path / "ro"
  ro.mkdir()
  os.chmod(ro, 0o500)
  if os.access(ro, os.W_OK):  # root ignores permissions
    target = "/proc/definitely/not/writable"
  else:
    target = str(ro / "run")
  with pytest.raises(ValueError, match="is not writable"):
    config_checks.check_workdir(target)


def test_schedules():
  c = toy_task.get_config().optimizer
  c.warmup_steps, c.learning_rate = 10, 1.0
  for name in optim.SCHEDULES:
    c.schedule = name
    lr = optim.schedule(c, 100)
    assert float(lr(0)) <= 0.11 and abs(float(lr(10)) - 1.0) < 1e-6, name
  c.schedule = "cosine"
  assert float(optim.schedule(c, 100)(100)) < 1e-6


def test_full_disk_fails_before_training(tmp_path, monkeypatch):
  usage = shutil.disk_usage(tmp_path)
  monkeypatch.setattr(config_checks.shutil, "disk_usage",
                      lambda path: usage._replace(free=5 << 20))  # 5 MiB left

  class MustNotBuild(toy_task.ToyTask):
    def build_model(self, rngs):
      raise AssertionError("the model was built before the disk check")

  c = toy_task.get_config()
  with pytest.raises(ValueError, match=r"has only 5 MiB free; checkpoints need at least 64 MiB"):
    trainer.train(c, str(tmp_path / "run"), task=MustNotBuild(c))
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_url_workdir_is_refused(tmp_path):
  with pytest.raises(ValueError, match="URLs are not supported.*gcsfuse"):
    config_checks.check_workdir("gs://bucket/run")


class _BlockedAttentionTask(toy_task.ToyTask):
  """Stands for a project whose attention kernel needs seq_len % block == 0."""

  def validate(self, config):
    seq_len, block = config.model.seq_len, config.model.attention_block
    if seq_len % block:
      raise ValueError(f"config.model.seq_len={seq_len} is not divisible by "
                       f"config.model.attention_block={block}; use a multiple of {block}.")

  def build_model(self, rngs):
    raise AssertionError("the model was built before Task.validate ran")


def test_task_validate_runs_before_anything_is_built(tmp_path):
  c = toy_task.get_config()
  c.model.seq_len, c.model.attention_block = 100, 64
  with pytest.raises(ValueError, match=r"seq_len=100 is not divisible by .*attention_block=64"):
    _run_with(c, tmp_path, _BlockedAttentionTask(c))


def _run_with(c, tmp_path, task):
  return trainer.train(c, str(tmp_path), task=task)


def test_eval_batch_not_divisible_by_data_shards(tmp_path):
  c = toy_task.get_config()
  c.eval.batch_size = 20  # 8 data shards
  with pytest.raises(ValueError, match=r"config.eval.batch_size=20 is not divisible by the 8 data"):
    _run(c, tmp_path)


def test_weight_decay_schedule_and_warmup_start():
  c = toy_task.get_config().optimizer
  c.weight_decay, c.final_weight_decay, c.weight_decay_schedule = 0.04, 0.4, "cosine"
  wd = optim.weight_decay_schedule(c, 100)
  assert abs(float(wd(0)) - 0.04) < 1e-7 and abs(float(wd(100)) - 0.4) < 1e-6
  assert abs(float(wd(50)) - 0.22) < 1e-6
  c.warmup_steps, c.learning_rate, c.warmup_init_lr = 10, 1e-3, 2e-4
  lr = optim.schedule(c, 100)
  assert abs(float(lr(0)) - 2e-4) < 1e-9 and abs(float(lr(10)) - 1e-3) < 1e-9
  c.weight_decay_schedule = "linear"
  with pytest.raises(ValueError, match="weight_decay_schedule='linear'; allowed"):
    optim.weight_decay_schedule(c, 100)


def test_lr_multipliers_equal_separate_learning_rates():
  """A group multiplier m gives exactly the AdamW step of learning rate m * lr (decay included)."""
  import jax.numpy as jnp
  import numpy as np
  import optax
  c = toy_task.get_config().optimizer
  c.update(dict(name="adamw", learning_rate=1e-2, schedule="constant", warmup_steps=0,
                weight_decay=0.1, weight_decay_mask="all"))
  c.lr_multipliers = (("(^|/)sea/", 10.0), (".*", 0.2))
  params = {"sea": {"w": jnp.ones((2, 2))}, "layers": {0: {"w": jnp.full((2, 2), 2.0)}}}
  grads = jax.tree.map(lambda p: 0.5 * p + 0.25, params)
  tx, _ = optim.make_optimizer(c, 10)
  updates, _ = tx.update(grads, tx.init(params), params)
  for path, lr in ((("sea", "w"), 0.1), (("layers", 0, "w"), 0.002)):
    ref = optax.adamw(lr, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=0.1)
    sub = lambda t: t[path[0]][path[1]] if len(path) == 2 else t[path[0]][path[1]][path[2]]
    want, _ = ref.update(sub(grads), ref.init(sub(params)), sub(params))
    np.testing.assert_allclose(sub(updates), want, rtol=1e-6)
  paths = optim.lr_multiplier_tree(params, optim.parse_lr_multipliers(c.lr_multipliers))
  assert paths == {"sea": {"w": 10.0}, "layers": {0: {"w": 0.2}}}


@pytest.mark.parametrize("value,match", [
    ((("sea", -1.0),), "multiplier >= 0"),
    (("sea",), "each entry is"),
    ((("(", 2.0),), "regex '\\(' is invalid"),
])
def test_bad_lr_multipliers(tmp_path, value, match):
  c = toy_task.get_config()
  c.optimizer.lr_multipliers = value
  with pytest.raises(ValueError, match=match):
    _run(c, tmp_path)
