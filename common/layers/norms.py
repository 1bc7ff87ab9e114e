"""LayerNorm and RMSNorm (T5's "LayerNorm" without mean subtraction or bias).

Both normalise in float32 whatever the compute dtype, because the variance of bfloat16
activations loses too many bits, and return the compute dtype. Scale and bias carry the
logical axis 'embed'.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)


class LayerNorm(nnx.Module):
  """y = (x - mean) / sqrt(var + eps) * scale + bias over the last axis."""

  def __init__(self, num_features: int, *, epsilon: float = 1e-6, use_bias: bool = True,
               use_scale: bool = True, dtype: Any = None, param_dtype: Any = jnp.float32):
    self.epsilon = epsilon
    self.dtype = dtype
    init = nnx.with_partitioning(nnx.initializers.ones, ("embed",))
    self.scale = nnx.Param(init(None, (num_features,), param_dtype)) if use_scale else None
    init = nnx.with_partitioning(nnx.initializers.zeros, ("embed",))
    self.bias = nnx.Param(init(None, (num_features,), param_dtype)) if use_bias else None

  def __call__(self, x: jax.Array) -> jax.Array:
    dtype = self.dtype or x.dtype
    y = x.astype(jnp.float32)
    mean = jnp.mean(y, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(y - mean), axis=-1, keepdims=True)
    y = (y - mean) * jax.lax.rsqrt(var + self.epsilon)
    if self.scale is not None:
      y = y * self.scale[...].astype(jnp.float32)
    if self.bias is not None:
      y = y + self.bias[...].astype(jnp.float32)
    return y.astype(dtype)


class RMSNorm(nnx.Module):
  """y = x / sqrt(mean(x^2) + eps) * scale over the last axis (T5 LayerNorm, eps 1e-6)."""

  def __init__(self, num_features: int, *, epsilon: float = 1e-6, use_scale: bool = True,
               dtype: Any = None, param_dtype: Any = jnp.float32):
    self.epsilon = epsilon
    self.dtype = dtype
    init = nnx.with_partitioning(nnx.initializers.ones, ("embed",))
    self.scale = nnx.Param(init(None, (num_features,), param_dtype)) if use_scale else None

  def __call__(self, x: jax.Array) -> jax.Array:
    dtype = self.dtype or x.dtype
    y = x.astype(jnp.float32)
    y = y * jax.lax.rsqrt(jnp.mean(jnp.square(y), axis=-1, keepdims=True) + self.epsilon)
    if self.scale is not None:
      y = y * self.scale[...].astype(jnp.float32)
    return y.astype(dtype)
