"""Expected calibration error (ECE) from per-bin sums.

Confidence is the maximum softmax probability; predictions fall into `num_bins` equal-width bins
over (0, 1], bin b holding confidences in (b/n, (b+1)/n] (a confidence of exactly 0 goes to bin
0). ECE = sum_b (n_b / N) |accuracy_b - mean confidence_b| = sum_b |correct_b - confidence_b| / N,
where correct_b and confidence_b are sums over the bin. 15 bins is the common default
(Guo et al. 2017); whether the Lazy Neuron paper used it is not confirmed.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def bin_sums(confidence: jax.Array, correct: jax.Array, weight: jax.Array,
             num_bins: int) -> dict[str, jax.Array]:
  """Per-bin weighted counts, correct sums and confidence sums, each [num_bins]."""
  index = jnp.clip(jnp.ceil(confidence * num_bins).astype(jnp.int32) - 1, 0, num_bins - 1)
  onehot = jax.nn.one_hot(index, num_bins, dtype=jnp.float32) * weight[:, None]
  return {
      "bin_count": jnp.sum(onehot, axis=0),
      "bin_correct": jnp.sum(onehot * correct[:, None], axis=0),
      "bin_confidence": jnp.sum(onehot * confidence[:, None], axis=0),
  }


def ece_from_sums(bin_correct: np.ndarray, bin_confidence: np.ndarray, total: float) -> float:
  if total <= 0:
    return float("nan")
  return float(np.sum(np.abs(bin_correct - bin_confidence)) / total)
