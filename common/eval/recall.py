"""Recall by distance: accuracy and cross-entropy of the answers, near vs far from their store.

For batches that carry 'distance' (int32 [B, T], the store-to-query distance of each weighted
answer, -1 elsewhere), e.g. the recall stream of common.data.recall. Buckets come from the data
config: 'near' (distance <= near_max, inside any local window) and 'far' (>= far_min). Results,
per split: '<split>/recall_<bucket>_accuracy', '<split>/recall_<bucket>_ce' (nats) and
'<split>/recall_<bucket>_count', and '<split>/recall_chance_ce' = ln(num_values), the loss of
a model that cannot see the store (the answers' unigram entropy).

The logits come from `task.eval_forward(model, batch)` ([B, T, V]), which the LM tasks that
train on the stream define.
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from common.eval import accumulate


class RecallEvaluator:

  def __init__(self, splits: str | Sequence[str], *, near_max: int, far_min: int,
               num_values: int, forward):
    self.splits = accumulate.as_splits(splits)
    self.buckets = {"near": (1, near_max), "far": (far_min, 2**31 - 1)}
    self.chance = math.log(num_values)
    self.forward = forward
    self._step = None

  def _compile(self):
    @nnx.jit
    def step(model, batch, index):
      del index
      logits = accumulate.clean_forward(self.forward, model, batch)
      logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
      nll = -jnp.take_along_axis(logp, batch["targets"][..., None], axis=-1)[..., 0]
      hit = (jnp.argmax(logits, axis=-1) == batch["targets"]).astype(jnp.float32)
      w = batch["weights"].astype(jnp.float32) * batch["mask"].astype(jnp.float32)[:, None]
      sums = {}
      for name, (lo, hi) in self.buckets.items():
        inside = w * ((batch["distance"] >= lo) & (batch["distance"] <= hi))
        sums[f"{name}_count"] = jnp.sum(inside)
        sums[f"{name}_hits"] = jnp.sum(hit * inside)
        sums[f"{name}_nll"] = jnp.sum(nll * inside)
      return sums
    return step

  def __call__(self, model: nnx.Module, ctx) -> dict[str, float]:
    if self._step is None:
      self._step = self._compile()
    out = {}
    for split, sums in accumulate.split_sums(self._step, model, ctx, self.splits, None):
      for name in self.buckets:
        count = float(sums[f"{name}_count"])
        out[f"{split}/recall_{name}_count"] = count
        out[f"{split}/recall_{name}_accuracy"] = float(sums[f"{name}_hits"]) / max(count, 1.0)
        out[f"{split}/recall_{name}_ce"] = float(sums[f"{name}_nll"]) / max(count, 1.0)
      out[f"{split}/recall_chance_ce"] = self.chance
    return out


def build(ctx) -> RecallEvaluator:
  """The registry's factory: refuses data without distances (anything but kind 'recall')."""
  data = ctx.config.data
  if data.get("kind", "") != "recall":
    raise ValueError(f"config.eval.evaluators has 'recall', which needs config.data.kind="
                     f"'recall' (answers with known distances); got {data.get('kind', '')!r}.")
  return RecallEvaluator(ctx.config.eval.splits, near_max=data.near_max, far_min=data.far_min,
                         num_values=data.num_values, forward=ctx.task.eval_forward)
