"""Classification quality on labelled splits: top-1/top-5 accuracy, loss and calibration (ECE).

One pass per split computes all four; results are keyed '<split>/accuracy',
'<split>/top5_accuracy', '<split>/loss' (softmax cross-entropy, no label smoothing),
'<split>/ece' (see common.eval.calibration) and '<split>/num_examples'. Padding examples
(mask 0) count nowhere. Top-k accuracy counts a label as found when fewer than k classes score
strictly higher (ties favour the label); with fewer than k classes it is 1.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from common.eval import accumulate, calibration


class ClassificationEvaluator:
  """Args:
    splits: split name(s) to evaluate.
    forward: (model, batch) -> logits [B, C]; default `model(batch['image'])`.
    label_key: where the int labels are.
    num_bins: ECE bins.
    max_batches: stop after this many batches per split (None: the config's eval.max_batches).
  """

  def __init__(self, splits: str | Sequence[str] = "test", *,
               forward: accumulate.Forward = accumulate.image_logits, label_key: str = "label",
               num_bins: int = 15, max_batches: int | None = None):
    self.splits = accumulate.as_splits(splits)
    self.num_bins = num_bins
    self.max_batches = max_batches

    def batch_sums(model: nnx.Module, batch: Mapping[str, Any], index) -> dict[str, jax.Array]:
      del index
      logits = accumulate.clean_forward(forward, model, batch).astype(jnp.float32)
      labels = batch[label_key]
      weight = batch["mask"].astype(jnp.float32)
      label_logit = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
      rank = jnp.sum(logits > label_logit[:, None], axis=-1)
      correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
      loss = jax.nn.logsumexp(logits, axis=-1) - label_logit
      confidence = jnp.max(jax.nn.softmax(logits, axis=-1), axis=-1)
      return {
          "count": jnp.sum(weight),
          "correct": jnp.sum(weight * correct),
          "correct5": jnp.sum(weight * (rank < 5)),
          "loss": jnp.sum(weight * loss),
          **calibration.bin_sums(confidence, correct, weight, num_bins),
      }

    self._batch_sums = nnx.jit(batch_sums)

  def __call__(self, model: nnx.Module, ctx: Any) -> dict[str, float]:
    out = {}
    for split, sums in accumulate.split_sums(self._batch_sums, model, ctx, self.splits,
                                             self.max_batches):
      n = float(sums.get("count", 0.0))
      out[f"{split}/num_examples"] = n
      for name, key in (("accuracy", "correct"), ("top5_accuracy", "correct5"), ("loss", "loss")):
        out[f"{split}/{name}"] = accumulate.safe_ratio(sums.get(key, 0.0), n)
      out[f"{split}/ece"] = calibration.ece_from_sums(
          sums.get("bin_correct", 0.0), sums.get("bin_confidence", 0.0), n)
    return out
