"""Loads the project's config files by path, as `--config path.py:variant` does."""
import importlib.util
import pathlib

import pytest

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[3] / "projects" / "lazy_neuron" / "configs"


def _load(name):
  spec = importlib.util.spec_from_file_location(f"lazy_neuron_config_{name}",
                                                CONFIG_DIR / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="package")
def config_module():
  cache = {}

  def get(name):
    if name not in cache:
      cache[name] = _load(name)
    return cache[name]

  return get
