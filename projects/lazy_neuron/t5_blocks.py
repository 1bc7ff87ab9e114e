"""T5 encoder and decoder blocks (pre-RMSNorm, no biases, residual dropout).

    encoder: x += drop(self_attn(norm(x), bias=rel_pos, mask=pad))
             x += drop(mlp(norm(x)))
    decoder: x += drop(causal_self_attn(norm(x), bias=causal rel_pos))
             x += drop(cross_attn(norm(x), encoder_out, mask=pad))
             x += drop(mlp(norm(x)))

Initialisers follow T5X (fan_in variance scaling, attention logits unscaled with 1/sqrt(d_kv)
folded into the query initialiser), so the layer stays numerically a T5 layer; the official
Mesh-TF initialisation was not checked against a golden file.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.layers import attention, mlp, norms
from common.layers.dropout import Dropout

ATTENTION_INIT = nnx.initializers.variance_scaling(1.0, "fan_in", "normal")
MLP_INIT = nnx.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")


def t5_attention(d_model: int, num_heads: int, head_dim: int, *, dropout_rate: float,
                 dtype: Any, param_dtype: Any, rngs: nnx.Rngs) -> attention.MultiHeadAttention:
  """Bias-free attention with T5's unscaled logits."""
  depth_scale = 1.0 / math.sqrt(head_dim)

  def query_init(key, shape, dtype=jnp.float32):
    return ATTENTION_INIT(key, shape, dtype) * depth_scale

  return attention.MultiHeadAttention(
      num_heads, d_model, head_dim=head_dim, use_bias=False, query_scale=1.0,
      dropout_rate=dropout_rate, kernel_init=ATTENTION_INIT, query_kernel_init=query_init,
      dtype=dtype, param_dtype=param_dtype, rngs=rngs)


class T5EncoderBlock(nnx.Module):
  """Args: d_model, num_heads, head_dim (d_kv), d_ff, the MLP's activation and top-k, dropout
  (residual, attention weights and MLP hidden layer alike, as T5), RMSNorm eps, dtypes."""

  def __init__(self, d_model: int, num_heads: int, head_dim: int, d_ff: int, *,
               activation: str = "relu", top_k: int = 0, topk_mode: str = "threshold",
               dropout_rate: float = 0.0, norm_eps: float = 1e-6, sow_activations: bool = False,
               dtype: Any = None, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    self.self_attention_norm = norms.RMSNorm(d_model, epsilon=norm_eps, dtype=dtype,
                                             param_dtype=param_dtype)
    self.self_attention = t5_attention(d_model, num_heads, head_dim, dropout_rate=dropout_rate,
                                       dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.mlp_norm = norms.RMSNorm(d_model, epsilon=norm_eps, dtype=dtype,
                                  param_dtype=param_dtype)
    self.mlp = mlp.Mlp(d_model, d_ff, activation=activation, top_k=top_k, topk_mode=topk_mode,
                       use_bias=False, dropout_rate=dropout_rate, kernel_init=MLP_INIT,
                       sow_activations=sow_activations, dtype=dtype, param_dtype=param_dtype,
                       rngs=rngs)
    self.dropout = Dropout(dropout_rate)

  def _residual(self, x, h, train, rngs):
    return x + self.dropout(h, train=train, rngs=rngs)

  def _self_attention(self, x, bias, mask, causal, train, rngs):
    h = self.self_attention(self.self_attention_norm(x), mask=mask, bias=bias, causal=causal,
                            train=train, rngs=rngs)
    return self._residual(x, h, train, rngs)

  def _mlp(self, x, token_mask, train, rngs):
    h = self.mlp(self.mlp_norm(x), token_mask=token_mask, train=train, rngs=rngs)
    return self._residual(x, h, train, rngs)

  def __call__(self, x: jax.Array, *, position_bias: jax.Array, mask: jax.Array,
               token_mask: jax.Array | None = None, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """x [B, T, D]; position_bias [1, H, T, T]; mask [B, 1, T, T]; token_mask [B, T]."""
    x = self._self_attention(x, position_bias, mask, False, train, rngs)
    return self._mlp(x, token_mask, train, rngs)


class T5DecoderBlock(T5EncoderBlock):
  """The encoder block plus cross-attention to the encoder output (no position bias there);
  its self-attention is causal. Same constructor arguments as T5EncoderBlock."""

  def __init__(self, d_model: int, num_heads: int, head_dim: int, d_ff: int, *,
               rngs: nnx.Rngs, **kwargs):
    super().__init__(d_model, num_heads, head_dim, d_ff, rngs=rngs, **kwargs)
    dtype, param_dtype = kwargs.get("dtype"), kwargs.get("param_dtype", jnp.float32)
    self.cross_attention_norm = norms.RMSNorm(d_model, epsilon=kwargs.get("norm_eps", 1e-6),
                                              dtype=dtype, param_dtype=param_dtype)
    self.cross_attention = t5_attention(d_model, num_heads, head_dim,
                                        dropout_rate=kwargs.get("dropout_rate", 0.0),
                                        dtype=dtype, param_dtype=param_dtype, rngs=rngs)

  def __call__(self, x: jax.Array, encoded: jax.Array, *, position_bias: jax.Array,
               cross_mask: jax.Array, token_mask: jax.Array | None = None,
               train: bool = False, rngs: nnx.Rngs | None = None) -> jax.Array:
    """x [B, Td, D]; encoded [B, Te, D]; position_bias [1, H, Td, Td] (causal buckets);
    cross_mask [B, 1, Td, Te]; token_mask [B, Td]."""
    x = self._self_attention(x, position_bias, None, True, train, rngs)
    h = self.cross_attention(self.cross_attention_norm(x), encoded, mask=cross_mask,
                             train=train, rngs=rngs)
    x = self._residual(x, h, train, rngs)
    return self._mlp(x, token_mask, train, rngs)
