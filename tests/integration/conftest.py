"""The single-process toy run that multi-process and fault tests compare with."""
import pytest

from common.train import toy_task, trainer
from tests.integration import launch


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
  """The uninterrupted single-process run on 8 devices: (workdir, config)."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  c = launch.toy_config()
  trainer.train(c, workdir, task=toy_task.ToyTask(c))
  return workdir, c
