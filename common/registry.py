"""The one rule of the repo's name registries (mixers, evaluators): a name has one meaning."""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from typing import Any, Callable


def claim(table: dict[str, Callable[..., Any]], kind: str, name: str, factory):
  """Puts `factory` in `table` under `name`. A second module claiming the name is an error;
  re-importing the module that registered it is not."""
  old = table.get(name)
  if old is not None and old.__module__ != factory.__module__:
    raise ValueError(f"{kind} {name!r} is registered by {old.__module__} already; "
                     f"{factory.__module__} must pick another name.")
  table[name] = factory
  return factory


def find(table: dict[str, Callable[..., Any]], name: str, module: str):
  """table[name], importing every `projects.<name>.<module>` first if it is not there yet;
  None if no project registers it either."""
  if name not in table:
    import_project_modules(module)
  return table.get(name)


def project_modules(module: str) -> list[str]:
  """The names `projects.<name>.<module>` that exist, sorted, without importing them. By name,
  as the trainer finds a project's task: common never imports a project."""
  try:
    projects = importlib.import_module("projects")
  except ImportError:  # common used without the projects tree
    return []
  names = (f"projects.{info.name}.{module}" for info in pkgutil.iter_modules(projects.__path__)
           if info.ispkg)
  return sorted(name for name in names if importlib.util.find_spec(name) is not None)


def import_project_modules(module: str) -> None:
  """Imports every `projects.<name>.<module>` that exists, so that the names it registers are
  known."""
  for name in project_modules(module):
    importlib.import_module(name)
