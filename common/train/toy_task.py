"""A seconds-sized task for testing the trainer itself: an MLP on a fixed synthetic problem.

It exercises every path a real project uses (params with logical axes, a batch-stat-like
non-param variable, dropout randomness, a grain iterator with checkpointable state) while
compiling in about a second, so trainer tests need no dataset and no project.
"""
from __future__ import annotations

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from common.data import process_order
from common.layers.dropout import Dropout
from common.layers.linear import Linear
from common.train import defaults
from common.train.task import Task


class RunningMean(nnx.Variable):
  """A non-parameter variable updated in training, like BatchNorm's statistics."""


class ToyMLP(nnx.Module):

  def __init__(self, din: int, hidden: int, classes: int, rngs: nnx.Rngs):
    init = nnx.initializers.lecun_normal()
    zeros = nnx.initializers.zeros
    self.w1 = Linear(din, hidden, kernel_axes=("embed", "mlp"), kernel_init=init, bias_init=zeros,
                     rngs=rngs)
    self.w2 = Linear(hidden, classes, kernel_axes=("mlp", "vocab"), kernel_init=init,
                     bias_init=zeros, rngs=rngs)
    self.dropout = Dropout(0.1)
    self.mean = RunningMean(jnp.zeros((din,)))
    self.update_mean = True

  def __call__(self, x, *, train: bool = False, rngs=None):
    if self.update_mean and train:
      self.mean.value = 0.9 * self.mean.value + 0.1 * jnp.mean(x, axis=0)
    h = nnx.relu(self.w1(x - self.mean.value))
    return self.w2(self.dropout(h, train=train, rngs=rngs))


def make_data(n: int = 512, din: int = 8, classes: int = 4, seed: int = 0):
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(din, classes))
  x = rng.normal(size=(n, din)).astype(np.float32)
  y = np.argmax(x @ w + 0.3 * rng.normal(size=(n, classes)), axis=1).astype(np.int32)
  return x, y


class ToyTask(Task):

  def __init__(self, config):
    super().__init__(config)
    self.x, self.y = make_data(din=config.model.din, classes=config.model.classes)

  def build_model(self, rngs):
    m = self.config.model
    return ToyMLP(m.din, m.hidden, m.classes, rngs)

  def loss(self, model, batch, *, train, rngs):
    logits = model(batch["x"], train=train, rngs=rngs)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
    w = batch.get("mask", jnp.ones_like(losses))
    loss = jnp.sum(losses * w) / jnp.maximum(jnp.sum(w), 1)
    acc = jnp.sum((jnp.argmax(logits, -1) == batch["y"]) * w) / jnp.maximum(jnp.sum(w), 1)
    if self.config.model.get("nan_at_step", -1) >= 0:
      # Fault injection for tests: poison the loss once the model's mean has moved.
      loss = jnp.where(jnp.abs(jnp.sum(model.mean.value)) > self.config.model.nan_threshold,
                       jnp.nan, loss)
    return loss, {"accuracy": acc}

  def _source(self, split):
    n = len(self.x)
    idx = np.arange(n)
    idx = idx[: n * 3 // 4] if split == "train" else idx[n * 3 // 4:]
    # "id" (the example's index) lets tests follow exactly which examples each step saw.
    return grain.MapDataset.source([{"x": self.x[i], "y": self.y[i], "id": np.int32(i)}
                                    for i in idx])

  def train_data(self, *, seed, process_index, process_count, batch_size):
    # The shared multi-host order (common.data.process_order): one global shuffle, each process
    # its block of every global batch, so the run does not depend on the process count.
    ds = self._source("train").shuffle(seed=seed).repeat()
    ds = process_order.local_share(ds, process_index=process_index, process_count=process_count,
                                   local_batch=batch_size)
    return iter(ds.batch(batch_size, drop_remainder=True).to_iter_dataset())

  def eval_data(self, split, *, process_index, process_count, batch_size):
    source = self._source(split)
    ds = source[process_index::process_count]
    items = [dict(e, mask=np.float32(1)) for e in ds]
    # Every process must yield the same number of batches (multi-host steps run in lockstep).
    per_process = -(-len(source) // process_count)
    total = -(-per_process // batch_size) * batch_size
    items += [dict(source[0], mask=np.float32(0))] * (total - len(items))
    for i in range(0, len(items), batch_size):
      chunk = items[i:i + batch_size]
      yield {k: np.stack([c[k] for c in chunk]) for k in chunk[0]}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = defaults.base_config()
  c.project = "toy"
  c.model = ml_collections.ConfigDict(dict(din=8, hidden=32, classes=4, dtype="float32",
                                           param_dtype="float32", remat_policy="none",
                                           nan_at_step=-1, nan_threshold=1e9))
  c.train.batch_size = 32
  c.train.num_steps = 20
  c.train.log_every = 5
  c.train.checkpoint_every = 10
  c.train.progress_bar = False
  c.train.async_checkpointing = False
  c.optimizer.learning_rate = 1e-2
  c.optimizer.warmup_steps = 2
  c.eval.batch_size = 32
  return c


def get_task(config: ml_collections.ConfigDict) -> ToyTask:
  """`config.project = "toy"` resolves here (common.train.task.BUILTIN_TASKS)."""
  return ToyTask(config)
