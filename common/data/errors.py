"""Errors the data layer raises on purpose (everything else is a bug)."""
from __future__ import annotations

from typing import Sequence


class DatasetNotFoundError(FileNotFoundError):
  """A dataset is not prepared where we looked; the message says how to prepare it."""

  def __init__(self, dataset: str, looked_in: Sequence[str], how_to_prepare: str,
               detail: str = ""):
    self.dataset = dataset
    self.looked_in = tuple(looked_in)
    self.how_to_prepare = how_to_prepare
    lines = [f"Dataset {dataset!r} is not prepared (array_record format) in any of:"]
    lines += [f"  - {p}" for p in self.looked_in]
    if detail:
      lines.append(detail)
    lines.append("How to prepare it:")
    lines += [f"  {line}" for line in how_to_prepare.splitlines()]
    super().__init__("\n".join(lines))
