"""The task's own loss and metrics on an evaluation split, weighted by the padding mask."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx


class TaskLoss:
  """Evaluates `task.loss(train=False)` over one pass of `split`.

  The task's loss is a mean over the batch; multiplying by the batch's real-example count and
  dividing by the total keeps padded final batches from biasing the average.
  """

  def __init__(self, split: str = "test"):
    self.split = split
    self._step = None

  def __call__(self, model: nnx.Module, ctx) -> dict[str, float]:
    if self._step is None:
      task = ctx.task

      @nnx.jit
      def step(model, batch):
        loss, metrics = task.loss(model, batch, train=False, rngs=None)
        w = jnp.sum(batch["mask"])
        return {k: v * w for k, v in dict(metrics, loss=loss).items()}, w

      self._step = step
    sums: dict[str, float] = {}
    total = 0.0
    for batch in ctx.batches(self.split):
      out, w = self._step(model, batch)
      total += float(w)
      for k, v in out.items():
        sums[k] = sums.get(k, 0.0) + float(v)
    if total == 0:
      raise ValueError(f"split {self.split!r} yielded no examples to evaluate.")
    return {f"{self.split}/{k}": v / total for k, v in sums.items()}
