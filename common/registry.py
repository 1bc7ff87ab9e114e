"""The one rule of the repo's name registries (mixers, evaluators): a name has one meaning."""
from __future__ import annotations

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
