"""Argument checks shared by layers and model factories.

Every failure names the field, the value and what is allowed, so a bad config value fails at
construction with a message the user can act on, not deep inside a traced computation.
"""
from __future__ import annotations

from typing import Any, Collection, Sequence


def check_choice(field: str, value: Any, allowed: Collection[Any]) -> None:
  """Raises ValueError unless `value` is one of `allowed`."""
  if value not in allowed:
    raise ValueError(f"{field}={value!r} is not supported; allowed: {sorted(allowed)}.")


def check_positive(field: str, value: Any) -> None:
  """Raises ValueError unless `value` is an int > 0."""
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise ValueError(f"{field}={value!r} must be a positive integer.")


def check_rate(field: str, value: Any) -> None:
  """Raises ValueError unless 0 <= value < 1 (dropout rates, label smoothing)."""
  if not 0.0 <= float(value) < 1.0:
    raise ValueError(f"{field}={value!r} must lie in [0, 1).")


def check_divides(field: str, value: int, divisor_field: str, divisor: int) -> None:
  """Raises ValueError unless `divisor` divides `value`."""
  if divisor <= 0 or value % divisor:
    raise ValueError(f"{divisor_field}={divisor!r} must divide {field}={value!r}.")


def per_layer(field: str, value: int | Sequence[int], depth: int) -> tuple[int, ...]:
  """An int (shared) or a sequence of `depth` ints -> a tuple of `depth` ints."""
  if isinstance(value, int) and not isinstance(value, bool):
    return (value,) * depth
  value = tuple(value)
  if len(value) != depth:
    raise ValueError(f"{field}={value!r} needs one entry per layer ({depth}), or one int for all.")
  return value
