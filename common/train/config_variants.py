"""Parsing a config file's `get_config(arg)` variant string: 'demo,topk,label_noise=0.2'.

Shared by every project's config files.

Bare words are flags; `key=value` words are typed overrides. At most one flag from each
exclusive group may be given; a group's first member is its default.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import ml_collections
from ml_collections import config_dict


def parse(arg: str | None, groups: Sequence[Sequence[str]],
          keys: Mapping[str, Callable[[str], Any]]) -> tuple[set[str], dict[str, Any]]:
  """Returns (chosen flags, one per group, defaults filled in; {key: typed value})."""
  words = [w.strip() for w in (arg or "").split(",") if w.strip()]
  flags, values = set(), {}
  allowed = sorted({f for g in groups for f in g}) + [f"{k}=..." for k in keys]
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


def int_or_tuple(value: int) -> config_dict.FieldReference:
  """A config field that holds an int or a tuple (e.g. top_k: one k, or one per layer).

  ConfigDict fields are type-locked to their first value; `object` lifts the lock, and
  `--config.model.top_k='(32, 32, 0, 0)'` then parses as a Python literal.
  """
  return config_dict.FieldReference(value, field_type=object)


def set_steps(config: ml_collections.ConfigDict, steps: int) -> None:
  """The 'steps=<n>' override: shorter runs keep the warm-up to at most a tenth of them."""
  config.train.num_steps = steps
  config.optimizer.warmup_steps = min(config.optimizer.warmup_steps, steps // 10)
