"""Activation sparsity: the fraction of nonzero MLP hidden activations, per layer and mean.

This is the Lazy Neuron paper's headline measure (average % of nonzero MLP entries per token;
3.0 % for T5-Base and 6.3 % for ViT-B/16 in its abstract), read from the 'act_nonzero' values
that `common.layers.mlp.Mlp` sows: per example, the mean over its (valid) tokens and hidden
units. Examples are averaged with the batch "mask", so padding examples do not count. Run it on
training and evaluation splits alike (the paper reports both).

Keys: '<split>/act_nonzero/<layer>' (layer names from common.layers.intermediates) and
'<split>/act_nonzero/mean', the unweighted mean over layers.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from common.eval import accumulate
from common.layers import intermediates


class SparsityEvaluator:
  """Args:
    splits: split name(s), e.g. ('train', 'test').
    forward: (model, batch) -> anything; only the sown statistics are used.
    stat_name: the sown name to read.
    max_batches: stop after this many batches per split (None: the config's eval.max_batches).
  """

  def __init__(self, splits: str | Sequence[str] = ("train", "test"), *,
               forward: accumulate.Forward = accumulate.image_logits,
               stat_name: str = "act_nonzero", max_batches: int | None = None):
    self.splits = accumulate.as_splits(splits)
    self.stat_name = stat_name
    self.max_batches = max_batches

    def batch_sums(model: nnx.Module, batch: Mapping[str, Any], index) -> dict[str, jax.Array]:
      del index
      nnx.pop(model, nnx.Intermediate)  # drop anything a caller left behind
      forward(model, batch)
      stats = intermediates.pop_layer_stats(model, stat_name)
      weight = batch["mask"].astype(jnp.float32)
      sums = {f"layer/{name}": jnp.sum(weight * value) for name, value in stats.items()}
      sums["count"] = jnp.sum(weight)
      return sums

    self._batch_sums = nnx.jit(batch_sums)

  def __call__(self, model: nnx.Module, ctx: Any) -> dict[str, float]:
    out = {}
    for split, sums in accumulate.split_sums(self._batch_sums, model, ctx, self.splits,
                                             self.max_batches):
      n = sums.pop("count", 0.0)
      if not sums and n:
        raise ValueError(f"The model sowed no {self.stat_name!r} values: does it contain "
                         "common.layers.mlp.Mlp layers with sow_stats=True?")
      layers = {name.removeprefix("layer/"): accumulate.safe_ratio(value, n)
                for name, value in sums.items()}
      for name, value in layers.items():
        out[f"{split}/{self.stat_name}/{name}"] = value
      if layers:
        out[f"{split}/{self.stat_name}/mean"] = sum(layers.values()) / len(layers)
    return out
