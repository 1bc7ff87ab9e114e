"""The transformer MLP block, with optional top-k thresholding and activation statistics.

    h = act(x W_i + b_i)            (gated: act(x W_i0) * (x W_i1))
    h = topk_threshold(h, k)        (if top_k > 0; see common.layers.topk)
    y = dropout(h) W_o + b_o

Statistics are sown into `nnx.Intermediate` for losses and evaluators to pop
(`nnx.pop(model, nnx.Intermediate)`, then `common.layers.intermediates.layer_stats`):

- 'act_nonzero', shape [B]: per example, the fraction of nonzero hidden activations, averaged
  over tokens (optionally only the valid ones, `token_mask`) and hidden units. This is the
  Lazy Neuron paper's measure: the average % of nonzero MLP entries per token. It is taken
  after top-k and before dropout, so dropout's zeros never count as sparsity.
- 'activations' (only with `sow_activations=True`): the hidden activations themselves, for
  probing. They are as large as the MLP's hidden layer, so off by default.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.layers import activations, topk, validation
from common.layers.initializers import Initializer

default_kernel_init = nnx.initializers.xavier_uniform()


class Mlp(nnx.Module):
  """Two-layer MLP over the last axis, [..., in_features] -> [..., out_features].

  Args:
    in_features: input width (d_model).
    hidden_features: hidden width (d_ff).
    out_features: output width; defaults to `in_features`.
    activation: a name from `common.layers.activations.ACTIVATIONS`.
    top_k: keep only the k largest hidden activations per token; 0 turns it off.
    topk_mode: 'threshold' | 'exact' | 'approx' (see common.layers.topk).
    use_bias: biases on both projections (ViT: yes; T5: no).
    dropout_rate: dropout on the hidden activations (after top-k).
    kernel_init, bias_init, out_kernel_init: initialisers (out defaults to kernel_init).
    dtype: compute dtype (None: from the inputs); param_dtype: parameter dtype.
    sow_stats: sow 'act_nonzero'; sow_activations: also sow the hidden activations.
  """

  def __init__(self, in_features: int, hidden_features: int, *, out_features: int | None = None,
               activation: str = "relu", top_k: int = 0, topk_mode: str = "threshold",
               use_bias: bool = True, dropout_rate: float = 0.0,
               kernel_init: Initializer = default_kernel_init,
               bias_init: Initializer = nnx.initializers.zeros,
               out_kernel_init: Initializer | None = None, dtype: Any = None,
               param_dtype: Any = jnp.float32, sow_stats: bool = True,
               sow_activations: bool = False, rngs: nnx.Rngs):
    validation.check_positive("hidden_features", hidden_features)
    activations.get_activation(activation)  # validates the name now, not at the first call
    validation.check_choice("topk_mode", topk_mode, topk.TOPK_MODES)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k <= hidden_features:
      raise ValueError(f"top_k={top_k!r} must be an integer in [0, hidden_features="
                       f"{hidden_features}] (0 turns top-k off).")
    validation.check_rate("dropout_rate", dropout_rate)
    out_features = out_features or in_features
    self.activation = activation
    self.top_k = top_k
    self.topk_mode = topk_mode
    self.sow_stats = sow_stats
    self.sow_activations = sow_activations

    def dense(n_in, n_out, init, axes):
      return nnx.Linear(n_in, n_out, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
                        kernel_init=nnx.with_partitioning(init, axes),
                        bias_init=nnx.with_partitioning(bias_init, (axes[1],)), rngs=rngs)

    self.wi = dense(in_features, hidden_features, kernel_init, ("embed", "mlp"))
    # The linear half of a gated unit; None keeps the parameter tree of plain MLPs minimal.
    self.wi_linear = (dense(in_features, hidden_features, kernel_init, ("embed", "mlp"))
                      if activations.is_gated(activation) else None)
    self.wo = dense(hidden_features, out_features, out_kernel_init or kernel_init,
                    ("mlp", "embed"))
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, x: jax.Array, *, token_mask: jax.Array | None = None,
               deterministic: bool = True, rngs: nnx.Rngs | None = None) -> jax.Array:
    """Args: x [B, ..., D]; token_mask [B, ...] (1 for tokens that count in 'act_nonzero')."""
    h = activations.get_activation(self.activation)(self.wi(x))
    if self.wi_linear is not None:
      h = h * self.wi_linear(x)
    if self.top_k:
      h = topk.topk_threshold(h, self.top_k, mode=self.topk_mode)
    if self.sow_stats:
      self.sow(nnx.Intermediate, "act_nonzero", nonzero_fraction(h, token_mask))
    if self.sow_activations:
      self.sow(nnx.Intermediate, "activations", h)
    h = self.dropout(h, deterministic=deterministic, rngs=rngs)
    # Named so the 'save_block_outputs' remat policy can keep it (common.layers.remat).
    return checkpoint_name(self.wo(h), "mlp_out")


def nonzero_fraction(h: jax.Array, token_mask: jax.Array | None = None) -> jax.Array:
  """Per example (axis 0): the fraction of nonzero entries of `h`, over valid tokens and units.

  `h` is [B, ..., F]; `token_mask` is [B, ...] or None (all tokens count). An example with no
  valid token gets 0.
  """
  per_token = jnp.mean((h != 0).astype(jnp.float32), axis=-1)
  if per_token.ndim == 1:
    return per_token
  axes = tuple(range(1, per_token.ndim))
  if token_mask is None:
    return jnp.mean(per_token, axis=axes)
  m = token_mask.astype(jnp.float32)
  return jnp.sum(per_token * m, axis=axes) / jnp.maximum(jnp.sum(m, axis=axes), 1.0)
