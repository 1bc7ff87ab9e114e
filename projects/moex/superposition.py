"""A ground-truth test of MoE-X's claim: sparse synthetic features in superposition.

MoE-X (Yang et al., ICML 2025) argues that a wide, sparsely activated hidden layer gives more
monosemantic units than a dense one of equal active parameters. On chess the true features
(board-state properties) are only partly observable; here they are known exactly, as in "Toy
Models of Superposition" (Elhage et al. 2022): the data are common.data.superposition (F sparse
features a superposed along fixed random directions of a d < F space, x = a @ E).

Model: x -> Linear(d -> F, no bias) -> FFN (projects/moex/ffn.py, any FFN kind, d_model = F) ->
ReLU -> a_hat [F]. Loss: mean squared error of a_hat against a, plus the FFN's auxiliary losses
(balance loss for MoE kinds). The FFN's hidden units (the M*D routing-weighted expert code for
MoE kinds, the H units for dense ones, as board_eval reads them) are the only place where the
superposed features can be pulled apart, so how they do it is what the evaluator measures.

Evaluator 'features' (config.eval.evaluators), on the fixed validation examples, with the F1
protocol of common/eval/feature_f1.py (the one MoE-X's chess coverage uses), property f =
"feature f is on":
  coverage   mean over features of the best single-unit F1 (max over firing thresholds)
  unit_f1    mean over firing units of their best single-feature F1 (monosemanticity)
  l0         mean number of nonzero hidden units per example (paper Fig. 4's x-axis)
  alive      fraction of hidden units that fire on some example
  units      hidden units measured
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from common.data import pipeline
from common.data import superposition as data_lib
from common.eval import feature_f1, registry
from common.layers.linear import Linear
from common.train import task as task_lib
from projects.moex import config as config_lib
from projects.moex import ffn as ffn_lib

NAME = "superposition"


class ToyModel(nnx.Module):
  """x [.., d] -> a_hat [.., F] = relu(FFN(x W_in))."""

  def __init__(self, cfg: config_lib.ModelConfig, input_dim: int, *, rngs: nnx.Rngs):
    init = nnx.initializers.normal(0.02)   # the FFN's own (GPT-2) initialisation
    self.inp = Linear(input_dim, cfg.d_model, use_bias=False, kernel_init=init, rngs=rngs)
    self.ffn = ffn_lib.build(cfg, out_init=init, rngs=rngs)

  def __call__(self, x, *, train: bool = False, rngs=None):
    del train, rngs
    return jax.nn.relu(self.ffn(self.inp(x)))


def hidden_code(model: ToyModel, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
  """The FFN's hidden code [N, units] on x, by batches; `model` itself never sows."""
  run = ffn_lib.capture(model, lambda probe: {"code": ffn_lib.set_capture(probe.ffn, True)})
  chunks = (x[i:i + batch_size] for i in range(0, len(x), batch_size))
  return np.concatenate([run(c)["code"].reshape(len(c), -1) for c in chunks])


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
  """Reconstruct the features from their superposition through one FFN (module doc); the
  batches come from config.data through common.data, as every task's."""

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    self.data = pipeline.validate(config.data)
    self.ffn = config_lib.from_config(config.model)

  def validate(self, config):
    d_model, features = config.model.d_model, pipeline.validate(config.data).num_features
    if d_model != features:
      raise ValueError(f"config.model.d_model={d_model} must equal config.data.num_features="
                       f"{features} (the FFN maps F to F).")

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return ToyModel(self.ffn, self.data.input_dim, rngs=rngs)

  def loss(self, model, batch, *, train, rngs):
    pred = model(batch["x"], train=train, rngs=rngs)
    stats = nnx.pop(model, nnx.Intermediate)
    err = jnp.mean(jnp.square(pred - batch["features"]), axis=-1)
    w = batch.get("mask", jnp.ones_like(err))
    mse = jnp.sum(err * w) / jnp.maximum(jnp.sum(w), 1)
    aux, metrics = ffn_lib.stats_metrics(stats, self.ffn)
    metrics["mse"] = mse
    return mse + aux, metrics
