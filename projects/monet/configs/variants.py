"""Parsing a config file's `get_config(arg)` string: 'demo,hd,steps=300'.

Bare words are flags (at most one per exclusive group; a group's first member is its default);
`key=value` words are typed overrides.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence


def parse(arg: str | None, groups: Sequence[Sequence[str]],
          keys: Mapping[str, Callable[[str], Any]]) -> tuple[set[str], dict[str, Any]]:
  """Returns (the chosen flags, one per group with defaults filled in, {key: typed value})."""
  words = [w.strip() for w in (arg or "").split(",") if w.strip()]
  allowed = sorted({f for g in groups for f in g}) + [f"{k}=..." for k in keys]
  flags, values = set(), {}
  for word in words:
    if "=" in word:
      key, raw = word.split("=", 1)
      if key not in keys:
        raise ValueError(f"config variant {word!r}: unknown key {key!r}; allowed: {allowed}.")
      try:
        values[key] = keys[key](raw)
      except ValueError as e:
        raise ValueError(f"config variant {word!r}: bad value for {key!r} ({e}).") from e
    elif any(word in g for g in groups):
      flags.add(word)
    else:
      raise ValueError(f"config variant {word!r} is unknown; allowed: {allowed}.")
  for group in groups:
    chosen = flags.intersection(group)
    if len(chosen) > 1:
      raise ValueError(f"config variants {sorted(chosen)} exclude each other; pick one of "
                       f"{list(group)}.")
    if not chosen:
      flags.add(group[0])
  return flags, values
