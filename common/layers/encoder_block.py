"""The pre-LN transformer encoder block (ViT, BERT-style with pre-norm).

    x = x + dropout(attention(norm1(x)))
    x = x + dropout(mlp(norm2(x)))
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.layers import attention, mlp, norms
from common.layers.dropout import Dropout
from common.layers.grad_barrier import cotangent_barrier


class PreLNEncoderBlock(nnx.Module):
  """Args mirror the ViT config: width D, num_heads, mlp_dim, the MLP's activation and top-k,
  dropout after each sub-block (`dropout_rate`; the MLP hidden layer uses the same rate, as
  big_vision's ViT), attention-weight dropout, LayerNorm eps, dtypes.
  """

  def __init__(self, width: int, num_heads: int, mlp_dim: int, *, activation: str = "gelu",
               top_k: int = 0, topk_mode: str = "threshold", dropout_rate: float = 0.0,
               attention_dropout_rate: float = 0.0, norm_eps: float = 1e-6,
               sow_activations: bool = False, dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    self.norm1 = norms.LayerNorm(width, epsilon=norm_eps, dtype=dtype, param_dtype=param_dtype)
    self.attention = attention.MultiHeadAttention(
        num_heads, width, dropout_rate=attention_dropout_rate, dtype=dtype,
        param_dtype=param_dtype, rngs=rngs)
    self.norm2 = norms.LayerNorm(width, epsilon=norm_eps, dtype=dtype, param_dtype=param_dtype)
    # big_vision's MlpBlock: xavier_uniform kernels, biases N(0, 1e-6).
    self.mlp = mlp.Mlp(width, mlp_dim, activation=activation, top_k=top_k, topk_mode=topk_mode,
                       dropout_rate=dropout_rate, bias_init=nnx.initializers.normal(1e-6),
                       sow_activations=sow_activations, dtype=dtype, param_dtype=param_dtype,
                       rngs=rngs)
    self.dropout = Dropout(dropout_rate)

  def __call__(self, x: jax.Array, *, mask: jax.Array | None = None,
               train: bool = False, rngs: nnx.Rngs | None = None) -> jax.Array:
    x = cotangent_barrier(x)  # one residual gradient per block in the backward (grad_barrier.py)
    h = self.attention(self.norm1(x), mask=mask, train=train, rngs=rngs)
    x = cotangent_barrier(x + self.dropout(h, train=train, rngs=rngs))
    h = self.mlp(self.norm2(x), train=train, rngs=rngs)
    return x + self.dropout(h, train=train, rngs=rngs)
