"""Load a config file the way `--config path.py:args` does, for scripts, demos and notebooks."""
from __future__ import annotations

import importlib.util
import os

import ml_collections


def load_config(spec: str, **overrides) -> ml_collections.ConfigDict:
  """`load_config("projects/x/configs/y.py:demo,tiny", **{"train.num_steps": 5})`.

  Overrides use dotted field names and go through ConfigDict's type checks, as on the
  command line; the result is locked so a misspelt field fails like `--config.train.num_step`.
  """
  path, _, arg = spec.partition(".py")
  path += ".py"
  arg = arg[1:] if arg.startswith(":") else None
  if not os.path.exists(path):
    raise FileNotFoundError(f"config file {path!r} not found (from {spec!r}).")
  module_spec = importlib.util.spec_from_file_location(f"_config_{abs(hash(path))}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(arg) if arg is not None else module.get_config()
  config.lock()
  for dotted, value in overrides.items():
    node = config
    *parents, leaf = dotted.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config
