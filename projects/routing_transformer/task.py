"""The Routing Transformer LM task: next-token cross-entropy plus the summed clustering loss.

Batches (common.data 'lm' format): 'inputs', 'targets' int32 [B, n], 'weights' float32 [B, n];
evaluation batches also carry 'mask' [B] (0 for padding examples). As TF, the cross-entropy is
averaged over the real target tokens and `extra_loss` (the per-layer 2*beta*e_loss, summed over
layers) is added, in training and evaluation alike.

Metrics: 'cross_entropy' (nats per token), 'bits_per_token' (= bits per byte with the byte
tokenizer, also reported as 'bits_per_byte'), 'accuracy', 'clustering_loss'. Perplexity is
exp('cross_entropy') of the evaluated mean (not averaged per batch).
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from common.eval import task_loss
from common.train import task as task_lib
from projects.routing_transformer import model as model_lib


def lm_loss(logits, targets, weights):
  """(mean cross-entropy over weighted tokens, weighted accuracy)."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
  total = jnp.maximum(jnp.sum(weights), 1e-8)
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  return jnp.sum(ce * weights) / total, jnp.sum(correct * weights) / total


class RoutingTransformerTask(task_lib.Task):
  """Decoder-only LM on config.data (text, 'lm' format)."""

  _evaluators: dict[str, task_lib.Evaluator] | None = None

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return model_lib.build_model(self.config, rngs)

  def loss(self, model, batch, *, train, rngs):
    inputs, targets = batch["inputs"], batch["targets"]
    weights = batch["weights"].astype(jnp.float32)
    if "mask" in batch:
      weights = weights * batch["mask"].astype(jnp.float32)[:, None]
    logits, clustering = model(inputs, train=train, rngs=rngs if train else None)
    ce, accuracy = lm_loss(logits, targets, weights)
    bits = ce / math.log(2.0)
    metrics = {"cross_entropy": ce, "bits_per_token": bits, "accuracy": accuracy,
               "clustering_loss": clustering}
    if self.config.data.get("tokenizer", "") == "bytes":
      metrics["bits_per_byte"] = bits
    return ce + clustering, metrics

  def evaluators(self) -> dict[str, task_lib.Evaluator]:
    # Built once: the trainer asks at every evaluation and new instances would recompile.
    if self._evaluators is None:
      self._evaluators = {f"loss_{s}" if len(self.config.eval.splits) > 1 else "loss":
                          task_loss.TaskLoss(s) for s in self.config.eval.splits}
    return self._evaluators


def get_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  return RoutingTransformerTask(config)
