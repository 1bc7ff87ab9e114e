"""Sparse features in superposition: a ground-truth test of how monosemantic an FFN's units are.

MoE-X (Yang et al., ICML 2025) and Monet (Park et al., ICLR 2025) both argue that their sparse
expert layers give more monosemantic hidden units than a dense MLP. On real data the true
features are only partly known; here they are known exactly, as in "Toy Models of Superposition"
(Elhage et al. 2022): the data are common.data.superposition (F sparse features superposed along
fixed random directions of a d < F space, x = a @ E).

Model: x -> Linear(d -> F, no bias) -> FFN (any project's, width F) -> ReLU -> a_hat [F].
Loss: mean squared error of a_hat against a, plus the FFN's auxiliary loss (balance or routing
losses). The FFN's hidden units are the only place where the superposed features can be pulled
apart, so how they do it is what the evaluator measures. A project supplies the FFN as a module
with the `ToyFFN` interface (projects/moex/superposition.py, projects/monet/superposition.py);
the model, the loss, the evaluator and the config's shared fields live here, so every project's
runs are scored by one code path on the same examples.

Evaluator 'features' (config.eval.evaluators), on the fixed validation examples, with the F1
protocol of common/eval/feature_f1.py (the one MoE-X's chess coverage uses), property f =
"feature f is on":
  coverage   mean over features of the best single-unit F1 (max over firing thresholds)
  unit_f1    mean over firing units of their best single-feature F1 (monosemanticity)
  l0         mean number of nonzero hidden units per example (MoE-X Fig. 4's x-axis)
  alive      fraction of hidden units that fire on some example
  units      hidden units measured
"""
from __future__ import annotations

from typing import Callable, Protocol

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from common.data import pipeline
from common.data import superposition as data_lib
from common.data.config import superposition_data_config
from common.eval import feature_f1, registry
from common.layers.linear import Linear
from common.train import config_variants as variants
from common.train import defaults
from common.train import task as task_lib

NAME = "superposition"


class ToyFFN(Protocol):
  """What a project's FFN gives the toy model: h [N, F] in, [N, F] out."""

  def __call__(self, h: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array, dict]:
    """(output [N, F], auxiliary loss (scalar, added to the MSE), scalar metrics)."""

  def hidden_code(self, h: jax.Array) -> jax.Array:
    """The hidden units the evaluator scores, [N, units] (evaluation mode)."""


class ToyModel(nnx.Module):
  """x [N, d] -> a_hat [N, F] = relu(FFN(x W_in)); W_in is built before the FFN, from the
  same key stream."""

  def __init__(self, input_dim: int, features: int, make_ffn: Callable[[nnx.Rngs], ToyFFN], *,
               rngs: nnx.Rngs):
    init = nnx.initializers.normal(0.02)
    self.inp = Linear(input_dim, features, use_bias=False, kernel_init=init, rngs=rngs)
    self.ffn = make_ffn(rngs)

  def __call__(self, x, *, train: bool = False, rngs=None):
    del rngs   # nothing random
    y, aux, metrics = self.ffn(self.inp(x), train=train)
    return jax.nn.relu(y), aux, metrics

  def hidden_code(self, x):
    return self.ffn.hidden_code(self.inp(x))


def hidden_code(model: ToyModel, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
  """The FFN's hidden code [N, units] on x, by batches, jitted once per batch shape. It runs on
  a merged copy, so whatever the FFN switches on to expose its code stays out of `model`."""
  graphdef, state = nnx.split(model)
  run = jax.jit(lambda state, x: nnx.merge(graphdef, state).hidden_code(x))
  chunks = (x[i:i + batch_size] for i in range(0, len(x), batch_size))
  return np.concatenate([np.asarray(run(state, c)).reshape(len(c), -1) for c in chunks])


def score(code: np.ndarray, features: np.ndarray) -> dict[str, float]:
  """The 'features' evaluator's numbers (module doc) for a hidden code and the true values."""
  on = features > 0
  return {"coverage": feature_f1.coverage(code, on), "unit_f1": feature_f1.unit_f1(code, on),
          "l0": float(np.mean(np.sum(code != 0, axis=1))),
          "alive": float(np.mean(code.max(0) > 0)), "units": float(code.shape[1])}


class FeaturesEvaluator:
  """The 'features' evaluator (module doc)."""

  def __init__(self, config: ml_collections.ConfigDict):
    if config.data.get("name") != NAME:
      raise ValueError(f"the 'features' evaluator needs config.data.name={NAME!r}; got "
                       f"{config.data.get('name')!r}. Remove it from config.eval.evaluators.")
    self.data = pipeline.validate(config.data)
    self._eval = None

  def __call__(self, model, ctx) -> dict[str, float]:
    del ctx
    if self._eval is None:
      self._eval = data_lib.eval_set(self.data)
    return score(hidden_code(model, self._eval["x"]), self._eval["features"])


registry.register("features", lambda ctx: FeaturesEvaluator(ctx.config))


class SuperpositionTask(task_lib.Task):
  """Reconstruct the features from their superposition through one FFN (module doc).

  `width` is the FFN's width as the project's config gives it (`width_field` names that field
  in errors); `make_ffn(rngs)` builds the FFN. The batches come from config.data through
  common.data, as every task's."""

  def __init__(self, config: ml_collections.ConfigDict, *, width: int, width_field: str,
               make_ffn: Callable[[nnx.Rngs], ToyFFN]):
    super().__init__(config)
    self.data = pipeline.validate(config.data)
    self.width, self.width_field, self.make_ffn = width, width_field, make_ffn

  def validate(self, config):
    if self.width != self.data.num_features:
      raise ValueError(f"config.model.{self.width_field}={self.width} must equal "
                       f"config.data.num_features={self.data.num_features} (the FFN maps F to F).")

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return ToyModel(self.data.input_dim, self.width, self.make_ffn, rngs=rngs)

  def loss(self, model, batch, *, train, rngs):
    pred, aux, metrics = model(batch["x"], train=train, rngs=rngs)
    err = jnp.mean(jnp.square(pred - batch["features"]), axis=-1)
    w = batch.get("mask", jnp.ones_like(err))
    mse = jnp.sum(err * w) / jnp.maximum(jnp.sum(w), 1)
    return mse + aux, dict(metrics, mse=mse)


def base_config(*, tiny: bool, steps: int | None = None) -> ml_collections.ConfigDict:
  """Every field but `project` and `model`: the data, optimiser, schedule and evaluation that
  every project's superposition runs share, so their scores compare.

  demo: F = 128 features, each on with probability 0.03 (~4 per example), in d = 32 input
  dimensions; batch 512, AdamW 3e-3 (cosine to 10%, warm-up 100), 2,000 steps, 8,192
  evaluation examples. tiny: 16 features in 8 dimensions, 3 steps (tests). `steps` overrides
  the length (config_variants.set_steps); one checkpoint, at the end.
  """
  c = defaults.base_config()
  features, dim = (16, 8) if tiny else (128, 32)
  c.data = superposition_data_config(num_features=features, input_dim=dim, density=0.03,
                                     eval_examples=256 if tiny else 8192)
  c.optimizer.update(dict(name="adamw", schedule="cosine", learning_rate=3e-3,
                          warmup_steps=1 if tiny else 100, end_lr_fraction=0.1,
                          weight_decay=0.0, grad_clip_norm=1.0))
  default_steps = 3 if tiny else 2000
  c.train.update(dict(batch_size=32 if tiny else 512, num_steps=default_steps,
                      log_every=1 if tiny else 500, keep_checkpoints=1, progress_bar=False))
  c.eval.update(dict(evaluators=("loss", "features"), splits=("validation",),
                     batch_size=256 if tiny else 2048))
  if steps:   # the 'steps=<n>' variant
    variants.set_steps(c, steps)
  c.train.checkpoint_every = c.train.num_steps
  return c
