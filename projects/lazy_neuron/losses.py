"""The project's losses: classification and token cross-entropy with example/token weights.

Both return a weighted mean: sum(w * loss) / max(sum(w), 1), so padded evaluation examples
(mask 0) and padded target tokens (weight 0) contribute nothing, and an all-padding batch gives
0 rather than NaN.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
  weights = weights.astype(jnp.float32)
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def classification_loss(logits: jax.Array, labels: jax.Array, weights: jax.Array, *,
                        label_smoothing: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """Softmax cross-entropy against (optionally smoothed) one-hot labels; returns (loss, acc)."""
  logits = logits.astype(jnp.float32)
  num_classes = logits.shape[-1]
  targets = jax.nn.one_hot(labels, num_classes)
  if label_smoothing:
    targets = targets * (1.0 - label_smoothing) + label_smoothing / num_classes
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  loss = -jnp.sum(targets * log_probs, axis=-1)
  correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  return weighted_mean(loss, weights), weighted_mean(correct, weights)


def token_loss(logits: jax.Array, targets: jax.Array, weights: jax.Array, *,
               z_loss: float = 0.0) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Token cross-entropy plus z_loss * log(Z)^2 (T5X/PaLM's logit-drift regulariser).

  Normalised by the total token weight (T5X instead divides by a fixed constant; the weighted
  mean keeps loss values comparable between batch shapes). Returns (loss, metrics).
  """
  logits = logits.astype(jnp.float32)
  log_z = jax.nn.logsumexp(logits, axis=-1)
  target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  cross_entropy = log_z - target_logit
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  ce = weighted_mean(cross_entropy, weights)
  z = weighted_mean(jnp.square(log_z), weights)
  metrics = {"cross_entropy": ce, "z_loss": z, "accuracy": weighted_mean(correct, weights)}
  return ce + z_loss * z, metrics
