"""The task's own loss and metrics on evaluation splits, weighted by the padding mask."""
from __future__ import annotations

import math
from typing import Sequence

import jax.numpy as jnp
from flax import nnx

from common.eval import accumulate


class TaskLoss:
  """Evaluates `task.loss(train=False)` over one pass of each split: '<split>/<metric>'.

  The task's loss is a mean over the batch; multiplying by the batch's real-example count and
  dividing by the total keeps padded final batches from biasing the average. Perplexity is not
  a mean: when the task reports 'ce' (cross-entropy per token, nats) and 'ppl' (the language-
  model family, common/tasks/lm.py), the split's 'ppl' is exp(its mean 'ce'), not the mean of
  per-batch perplexities.
  """

  def __init__(self, splits: str | Sequence[str] = "test"):
    self.splits = accumulate.as_splits(splits)
    self._step = None

  def _compile(self, task):
    @nnx.jit
    def step(model, batch):
      loss, metrics = task.loss(model, batch, train=False, rngs=None)
      w = jnp.sum(batch["mask"])
      return {k: v * w for k, v in dict(metrics, loss=loss).items()}, w
    return step

  def __call__(self, model: nnx.Module, ctx) -> dict[str, float]:
    if self._step is None:
      self._step = self._compile(ctx.task)
    out = {}
    for split in self.splits:
      sums: dict[str, float] = {}
      total = 0.0
      for batch in ctx.batches(split):
        values, w = self._step(model, batch)
        total += float(w)
        for k, v in values.items():
          sums[k] = sums.get(k, 0.0) + float(v)
      if total == 0:
        raise ValueError(f"split {split!r} yielded no examples to evaluate.")
      means = {k: v / total for k, v in sums.items()}
      if "ce" in means and "ppl" in means:
        means["ppl"] = math.exp(means["ce"])
      out.update({f"{split}/{k}": v for k, v in means.items()})
    return out
