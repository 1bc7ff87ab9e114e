"""The transformer MLP block, with optional top-k thresholding and activation statistics.

    h = act(x W_i + b_i)            (gated: act(x W_i0) * (x W_i1))
    h = topk_threshold(h, k)        (if top_k > 0; see common.layers.topk)
    y = dropout(h) W_o + b_o        (output_dropout=True: dropout(y) too, as timm's Mlp)

It covers the ports' fc1 -> act -> drop -> fc2 [-> drop] MLPs: `layer_names` renames the
projections (e.g. ('fc1', 'fc1_linear', 'fc2') for timm/torch checkpoints), `kernel_init` /
`bias_init` / `kernel_axes` set init and sharding, `sow_stats=False` keeps the model free of
`nnx.Intermediate`s. MLPs with something between the projections (SViT's depthwise conv) stay in
their project. Call convention: `__call__(x, *, token_mask=None, train=False, rngs=None)`.

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
from common.layers.dropout import Dropout
from common.layers.initializers import Initializer
from common.layers.linear import Linear

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
    output_dropout: also drop the output with `dropout_rate` (timm's Mlp `drop`).
    kernel_init, bias_init, out_kernel_init: initialisers (out defaults to kernel_init).
    kernel_axes: logical names of the input kernel (in, hidden); the output kernel reverses them.
    layer_names: attribute names of (input, gated linear half, output) projections.
    dtype: compute dtype (None: from the inputs); param_dtype: parameter dtype.
    sow_stats: sow 'act_nonzero'; sow_activations: also sow the hidden activations.
  """

  def __init__(self, in_features: int, hidden_features: int, *, out_features: int | None = None,
               activation: str = "relu", top_k: int = 0, topk_mode: str = "threshold",
               use_bias: bool = True, dropout_rate: float = 0.0, output_dropout: bool = False,
               kernel_init: Initializer = default_kernel_init,
               bias_init: Initializer = nnx.initializers.zeros,
               out_kernel_init: Initializer | None = None,
               kernel_axes: tuple[str | None, str | None] = ("embed", "mlp"),
               layer_names: tuple[str, str, str] = ("wi", "wi_linear", "wo"),
               dtype: Any = None, param_dtype: Any = jnp.float32, sow_stats: bool = True,
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
    self.output_dropout = output_dropout
    if len(set(layer_names)) != 3 or "dropout" in layer_names:
      raise ValueError(f"layer_names={layer_names!r} must be 3 distinct attribute names.")
    self.layer_names = tuple(layer_names)
    axes_in, axes_out = tuple(kernel_axes), tuple(reversed(kernel_axes))

    def dense(n_in, n_out, init, axes):
      return Linear(n_in, n_out, use_bias=use_bias, kernel_axes=axes, kernel_init=init,
                    bias_init=bias_init, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    name_in, name_gate, name_out = self.layer_names
    setattr(self, name_in, dense(in_features, hidden_features, kernel_init, axes_in))
    # The linear half of a gated unit; None keeps the parameter tree of plain MLPs minimal.
    setattr(self, name_gate, dense(in_features, hidden_features, kernel_init, axes_in)
            if activations.is_gated(activation) else None)
    setattr(self, name_out, dense(hidden_features, out_features, out_kernel_init or kernel_init,
                                  axes_out))
    self.dropout = Dropout(dropout_rate)

  def __call__(self, x: jax.Array, *, token_mask: jax.Array | None = None, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Args: x [B, ..., D]; token_mask [B, ...] (1 for tokens that count in 'act_nonzero')."""
    proj_in, gate, proj_out = (getattr(self, n) for n in self.layer_names)
    h = activations.get_activation(self.activation)(proj_in(x))
    if gate is not None:
      h = h * gate(x)
    if self.top_k:
      h = topk.topk_threshold(h, self.top_k, mode=self.topk_mode)
    if self.sow_stats:
      self.sow(nnx.Intermediate, "act_nonzero", nonzero_fraction(h, token_mask))
    if self.sow_activations:
      self.sow(nnx.Intermediate, "activations", h)
    h = self.dropout(h, train=train, rngs=rngs)
    y = proj_out(h)
    if self.output_dropout:
      y = self.dropout(y, train=train, rngs=rngs)
    # Named so the 'save_block_outputs' remat policy can keep it (common.layers.remat).
    return checkpoint_name(y, "mlp_out")


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
