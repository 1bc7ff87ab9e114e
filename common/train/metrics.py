"""Metric writers: stdout (logging), a JSONL file and TensorBoard event files, process 0 only."""
from __future__ import annotations

import json
import logging
import math
import os
from typing import Mapping

import jax


def _scalar(v) -> float:
  v = float(v)
  return v if math.isfinite(v) else float("nan")


class MetricWriter:
  """Writes `{name: scalar}` dicts with a step to every sink. Non-primary processes are silent."""

  def __init__(self, workdir: str, *, tensorboard: bool = True):
    self.active = jax.process_index() == 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._file = None
    self._tb = None
    if not self.active:
      return
    os.makedirs(workdir, exist_ok=True)
    self._file = open(self.path, "a", buffering=1)
    if tensorboard:
      try:
        from tensorboardX import SummaryWriter
        self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
      except ImportError:  # optional dependency; JSONL stays the source of truth
        logging.warning("tensorboardX is not installed: no TensorBoard event files.")

  def write(self, step: int, metrics: Mapping[str, float], *, prefix: str = "") -> None:
    if not self.active:
      return
    row = {f"{prefix}{k}": _scalar(v) for k, v in metrics.items()}
    self._file.write(json.dumps({"step": int(step), **row}) + "\n")
    if self._tb is not None:
      for k, v in row.items():
        self._tb.add_scalar(k, v, int(step))
    shown = " ".join(f"{k}={v:.5g}" for k, v in sorted(row.items()))
    logging.info("step %d: %s", step, shown)

  def close(self) -> None:
    if self._file:
      self._file.close()
    if self._tb:
      self._tb.close()


def read_jsonl(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
