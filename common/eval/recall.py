"""Loss by distance: accuracy and cross-entropy of the targets, bucketed by how far back the
evidence that predicts them lies.

Two sources of the distance, one evaluator (`DistanceEvaluator`):
  'recall'           batches that carry 'distance' (int32 [B, T], the store-to-query distance of
                     each weighted answer, -1 elsewhere), e.g. the recall stream of
                     common.data.recall. Buckets from the data config: 'near' (distance <=
                     near_max, inside any local window) and 'far' (>= far_min). Results, per
                     split: '<split>/recall_<bucket>_accuracy', '_ce' (nats) and '_count', and
                     '<split>/recall_chance_ce' = ln(num_values), the loss of a model that cannot
                     see the store (the answers' unigram entropy).
  'repeat_distance'  any text LM batch: the distance of target t is t - s for the last s < t at
                     which the same `eval.repeat_k` tokens (default 8; the target and the k - 1
                     before it) occur, within the sequence, i.e. how far back a model must look to
                     copy the target from its last occurrence in the same context (-1: never).
                     Buckets from `eval.repeat_edges` (default (64, 256, 1024)): 'le64',
                     '65to256', '257to1024', 'gt1024' and 'none'. Results, per split:
                     '<split>/repeat_<bucket>_accuracy', '_ce' (nats), '_count' and '_fraction'
                     (of the scored targets). A local window of w can copy only the buckets up
                     to w; content-based or dense attention can reach the others.

The logits come from `task.eval_forward(model, batch)` ([B, T, V]), which the LM tasks that
use these evaluators define.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from common.eval import accumulate

NEVER = (-1, -1)          # the bucket of targets with no earlier occurrence
REPEAT_K = 8
REPEAT_EDGES = (64, 256, 1024)


def repeat_distance(inputs: jax.Array, targets: jax.Array, k: int) -> jax.Array:
  """int32 [B, T]: for target t, t - s for the last target s < t whose k-gram (the target and
  the k - 1 tokens before it, in inputs[0], targets) equals target t's; -1 where none does or
  the sequence holds fewer than k tokens up to t. Exact (a stable sort on the k tokens, no
  hashing)."""
  seq = jnp.concatenate([inputs[:, :1], targets], axis=1)            # [B, T + 1]
  n = seq.shape[1]
  pos = jnp.arange(n)

  def one(row):
    # key_j[p] = row[p - j]; a k-gram that starts before the sequence gets a key no other
    # position has, so it never matches.
    keys = [jnp.where(pos >= j, jnp.roll(row, j), -1 - pos) for j in range(k)]
    order = jnp.lexsort([pos] + keys)                                # by keys, then position
    sorted_keys = jnp.stack([key[order] for key in keys])
    same = jnp.concatenate([jnp.zeros(1, bool),
                            jnp.all(sorted_keys[:, 1:] == sorted_keys[:, :-1], axis=0)])
    back = jnp.where(same, order - jnp.roll(order, 1), -1)
    return jnp.zeros(n, jnp.int32).at[order].set(back.astype(jnp.int32))

  return jax.vmap(one)(seq)[:, 1:]                                    # positions of the targets


def repeat_buckets(edges: Sequence[int]) -> dict[str, tuple[int, int]]:
  """(64, 256) -> {'le64': (1, 64), '65to256': (65, 256), 'gt256': (257, 2**31 - 1), 'none'}."""
  edges = tuple(int(e) for e in edges)
  if not edges or any(e < 1 for e in edges) or list(edges) != sorted(set(edges)):
    raise ValueError(f"config.eval.repeat_edges={edges!r}: expected increasing positive "
                     "distances, e.g. (64, 256, 1024).")
  buckets = {f"le{edges[0]}": (1, edges[0])}
  buckets.update({f"{a + 1}to{b}": (a + 1, b) for a, b in zip(edges, edges[1:])})
  buckets[f"gt{edges[-1]}"] = (edges[-1] + 1, 2**31 - 1)
  buckets["none"] = NEVER
  return buckets


class DistanceEvaluator:
  """Per-bucket accuracy, cross-entropy and count of the weighted targets (module doc)."""

  def __init__(self, splits: str | Sequence[str], *, prefix: str,
               buckets: Mapping[str, tuple[int, int]],
               distance: Callable[[Mapping[str, jax.Array]], jax.Array], forward,
               constants: Mapping[str, float] | None = None, fractions: bool = False):
    self.splits = accumulate.as_splits(splits)
    self.prefix, self.buckets, self.distance = prefix, dict(buckets), distance
    self.forward, self.constants, self.fractions = forward, dict(constants or {}), fractions
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
      distance = self.distance(batch)
      sums = {"all_count": jnp.sum(w)}
      for name, (lo, hi) in self.buckets.items():
        inside = w * ((distance >= lo) & (distance <= hi))
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
      key = f"{split}/{self.prefix}"
      for name in self.buckets:
        count = float(sums[f"{name}_count"])
        out[f"{key}_{name}_count"] = count
        out[f"{key}_{name}_accuracy"] = float(sums[f"{name}_hits"]) / max(count, 1.0)
        out[f"{key}_{name}_ce"] = float(sums[f"{name}_nll"]) / max(count, 1.0)
        if self.fractions:
          out[f"{key}_{name}_fraction"] = count / max(float(sums["all_count"]), 1.0)
      out.update({f"{key}_{name}": value for name, value in self.constants.items()})
    return out


def build(ctx) -> DistanceEvaluator:
  """'recall': refuses data without distances (anything but kind 'recall')."""
  data = ctx.config.data
  if data.get("kind", "") != "recall":
    raise ValueError(f"config.eval.evaluators has 'recall', which needs config.data.kind="
                     f"'recall' (answers with known distances); got {data.get('kind', '')!r}.")
  return DistanceEvaluator(
      ctx.config.eval.splits, prefix="recall",
      buckets={"near": (1, data.near_max), "far": (data.far_min, 2**31 - 1)},
      distance=lambda batch: batch["distance"], forward=ctx.task.eval_forward,
      constants={"chance_ce": math.log(data.num_values)})


def build_repeat(ctx) -> DistanceEvaluator:
  """'repeat_distance': text LM data only; k and the edges from config.eval (module doc)."""
  config = ctx.config
  if config.data.get("kind", "") != "text":
    raise ValueError(f"config.eval.evaluators has 'repeat_distance', which scores text; "
                     f"config.data.kind={config.data.get('kind', '')!r}. Drop it.")
  k = config.eval.get("repeat_k", REPEAT_K)
  if not isinstance(k, int) or k < 1:
    raise ValueError(f"config.eval.repeat_k={k!r}: expected an integer >= 1 (tokens per "
                     "repeated k-gram, the target included).")
  return DistanceEvaluator(
      config.eval.splits, prefix="repeat",
      buckets=repeat_buckets(config.eval.get("repeat_edges", REPEAT_EDGES)),
      distance=lambda batch: repeat_distance(batch["inputs"], batch["targets"], k),
      forward=ctx.task.eval_forward, fractions=True)
