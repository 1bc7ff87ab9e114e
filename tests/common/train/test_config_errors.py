"""Bad configs fail before anything is compiled, naming the field and the fix."""
import os

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
