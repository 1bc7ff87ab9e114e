"""The Lazy Neuron Task: `get_task(config)` picks the ViT or T5 task by `config.model.name`.

Both losses run the model, pop the MLP statistics the layers sowed, and report them as metrics:
'act_nonzero/<layer>' (the fraction of nonzero MLP activations per token, averaged over the
batch's real examples) and 'act_nonzero/mean' over layers. During training these are the
training-data sparsity curves the paper plots.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from common.layers import intermediates, validation
from common.train import task as task_lib
from projects.lazy_neuron import config as config_lib, losses, model as model_lib


def _example_weights(batch: task_lib.Batch, first: jax.Array) -> jax.Array:
  """Eval batches carry "mask" (0 for padding examples); training batches weigh all 1."""
  mask = batch.get("mask")
  return jnp.ones(first.shape[0], jnp.float32) if mask is None else mask.astype(jnp.float32)


def sparsity_metrics(model: nnx.Module, weights: jax.Array) -> dict[str, jax.Array]:
  """Pops the sown 'act_nonzero' values: per-layer weighted means over examples, and their mean."""
  stats = intermediates.pop_layer_stats(model, "act_nonzero")
  metrics = {f"act_nonzero/{name}": losses.weighted_mean(value, weights)
             for name, value in stats.items()}
  if metrics:
    metrics["act_nonzero/mean"] = jnp.mean(jnp.stack(list(metrics.values())))
  return metrics


def _dropout_rngs(config: ml_collections.ConfigDict, train: bool, rngs: nnx.Rngs | None):
  if train and config.model.dropout_rate > 0 and rngs is None:
    raise ValueError(f"config.model.dropout_rate={config.model.dropout_rate} needs `rngs` "
                     "(with a 'dropout' stream) in the training loss; got rngs=None.")
  return rngs if train else None


class _LazyNeuronTask(task_lib.Task):
  """config.model checked and built once (projects/lazy_neuron/config.py), before any model."""

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    self.model_config = config_lib.from_config(config.model)

  def validate(self, config: ml_collections.ConfigDict) -> None:
    model_lib.check_data(config_lib.from_config(config.model), config.data)


class ViTTask(_LazyNeuronTask):
  """Image classification: batches {'image' [B,H,W,C], 'label' [B], optional 'mask' [B]}."""

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return model_lib.build_vit(self.model_config, self.config.data, rngs)

  def loss(self, model, batch, *, train, rngs):
    rngs = _dropout_rngs(self.config, train, rngs)
    nnx.pop(model, nnx.Intermediate)  # stale values would be averaged into this batch's stats
    logits = model(batch["image"], train=train, rngs=rngs)
    weights = _example_weights(batch, batch["label"])
    loss, accuracy = losses.classification_loss(
        logits, batch["label"], weights, label_smoothing=self.model_config.label_smoothing)
    return loss, {"accuracy": accuracy, **sparsity_metrics(model, weights)}

class T5Task(_LazyNeuronTask):
  """Span corruption: {'encoder_input_tokens', 'decoder_input_tokens', 'decoder_target_tokens'
  int32, 'decoder_loss_weights' float32, optional 'mask' [B]}."""

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return model_lib.build_t5(self.model_config, rngs)

  def eval_forward(self, model, batch):
    """What the shared 'sparsity' evaluator runs (common/eval/registry.py)."""
    return model(batch["encoder_input_tokens"], batch["decoder_input_tokens"],
                 decoder_target_tokens=batch["decoder_target_tokens"])

  def loss(self, model, batch, *, train, rngs):
    rngs = _dropout_rngs(self.config, train, rngs)
    nnx.pop(model, nnx.Intermediate)
    targets = batch["decoder_target_tokens"]
    logits = model(batch["encoder_input_tokens"], batch["decoder_input_tokens"],
                   decoder_target_tokens=targets, train=train, rngs=rngs)
    example_weights = _example_weights(batch, targets)
    token_weights = batch["decoder_loss_weights"] * example_weights[:, None]
    loss, metrics = losses.token_loss(logits, targets, token_weights,
                                      z_loss=self.model_config.z_loss)
    return loss, {**metrics, **sparsity_metrics(model, example_weights)}


TASKS = {"vit": ViTTask, "t5": T5Task}


def get_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  validation.check_choice("config.model.name", config.model.get("name"), TASKS)
  return TASKS[config.model.name](config)
