"""CI must import every project (scenic's lesson): each main.py, task.py and config file loads.

A config file that no longer builds, or a task module with a broken import, fails here rather
than on a researcher's TPU slice.
"""
import importlib
import importlib.util
import pathlib

import pytest

from common.train import config_checks, config_io
from common.train import task as task_lib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROJECTS = sorted(p.parent.name for p in (ROOT / "projects").glob("*/__init__.py"))
MAINS = [n for n in PROJECTS if (ROOT / "projects" / n / "main.py").exists()]
CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "projects").glob("*/configs/*.py")
                 if not p.name.startswith("_"))


def test_every_project_is_found():
  assert "lazy_neuron" in MAINS


@pytest.mark.parametrize("name", MAINS)
def test_main_and_task_import(name):
  main = importlib.import_module(f"projects.{name}.main")
  assert hasattr(main, "main"), f"projects/{name}/main.py must call common.train.main.run"
  task = importlib.import_module(f"projects.{name}.task")
  assert callable(task.get_task)


def _test_args(path: str) -> tuple:
  """A config file that needs an argument lists examples in `TEST_ARGS` (default: no arg)."""
  spec = importlib.util.spec_from_file_location("_cfg_probe", ROOT / path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  assert hasattr(module, "get_config"), f"{path}: every file in configs/ must define get_config"
  return tuple(getattr(module, "TEST_ARGS", (None,)))


@pytest.mark.parametrize("path", CONFIGS)
def test_config_files_build_and_validate(path, monkeypatch):
  monkeypatch.chdir(ROOT)
  for arg in _test_args(path):
    config = config_io.load_config(f"{path}:{arg}" if arg else path)
    config_checks.validate(config)
    # A project's configs train that project, or a built-in task it drives (the routing demo's
    # recall harness is 'mixer_lm', whose mixers come from several projects).
    allowed = (path.split("/")[1],) + tuple(task_lib.BUILTIN_TASKS)
    assert config.project in allowed, f"{path} names project {config.project!r}"
