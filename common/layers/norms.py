"""LayerNorm, RMSNorm (T5's "LayerNorm": no mean, no bias) and BatchNorm with torch numerics.

All statistics are computed in (at least) float32 whatever the compute dtype, because the
variance of bfloat16 activations loses too many bits. The variance is two-pass, E[(x - mean)^2],
as torch computes it (not E[x^2] - mean^2, Flax's fast variance). Normalising follows
`nnx.LayerNorm` / `nnx.BatchNorm` op for op, y = (x - mean) * (rsqrt(var + eps) * scale) + bias,
so a port that used them changes no number. The result has `dtype`, or, when it is None, the
dtype promoted from the input and the parameters (Flax's rule).

Parameters are `scale` and `bias` (BatchNorm adds the `nnx.BatchStat`s `mean` and `var`), the
names of Flax's norms; they carry the logical axis names `param_axes` (default ('embed',); use
(None,) for a norm over a non-model axis). The epsilon defaults differ by family on purpose:
1e-6 (LayerNorm, RMSNorm: ViT/T5), 1e-5 (BatchNorm: torch); torch's nn.LayerNorm is 1e-5.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.layers import validation
from common.layers.keys import param

Axes = Sequence[str | None]


def _affine(num_features: int, use_scale: bool, use_bias: bool, axes: Axes, param_dtype: Any):
  axes = tuple(axes)
  scale = param(nnx.initializers.ones, axes, None, (num_features,), param_dtype) if use_scale \
      else None
  bias = param(nnx.initializers.zeros, axes, None, (num_features,), param_dtype) if use_bias \
      else None
  return scale, bias


def _out_dtype(dtype: Any, *arrays) -> Any:
  if dtype is not None:
    return dtype
  return jnp.result_type(*[a for a in arrays if a is not None])


class LayerNorm(nnx.Module):
  """y = (x - mean) / sqrt(var + eps) * scale + bias over the last axis (torch/Flax numerics).

  `rngs` is accepted and unused (nothing is drawn), so call sites can pass one kwargs dict.
  """

  def __init__(self, num_features: int, *, epsilon: float = 1e-6, use_bias: bool = True,
               use_scale: bool = True, param_axes: Axes = ("embed",), dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: Any = None):
    del rngs
    validation.check_positive("num_features", num_features)
    self.epsilon = epsilon
    self.dtype = dtype
    self.scale, self.bias = _affine(num_features, use_scale, use_bias, param_axes, param_dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    scale = self.scale[...] if self.scale is not None else None
    bias = self.bias[...] if self.bias is not None else None
    xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean = jnp.mean(xf, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(xf - mean), axis=-1, keepdims=True)
    mul = jax.lax.rsqrt(var + self.epsilon)
    if scale is not None:
      mul = mul * scale
    y = (xf - mean) * mul
    if bias is not None:
      y = y + bias
    return y.astype(_out_dtype(self.dtype, x, scale, bias))


class RMSNorm(nnx.Module):
  """y = x / sqrt(mean(x^2) + eps) * scale over the last axis (T5 LayerNorm, LLaMA RMSNorm).

  `cast_before_scale=True` is HF's LlamaRMSNorm order: normalise in float32, cast back to the
  input dtype, then multiply by the scale (the product takes the wider of the two dtypes).
  The default multiplies in float32 and casts once at the end (T5X). They differ only below
  float32.
  """

  def __init__(self, num_features: int, *, epsilon: float = 1e-6, use_scale: bool = True,
               cast_before_scale: bool = False, param_axes: Axes = ("embed",),
               dtype: Any = None, param_dtype: Any = jnp.float32, rngs: Any = None):
    del rngs
    validation.check_positive("num_features", num_features)
    self.epsilon = epsilon
    self.cast_before_scale = cast_before_scale
    self.dtype = dtype
    self.scale, _ = _affine(num_features, use_scale, False, param_axes, param_dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    scale = self.scale[...] if self.scale is not None else None
    out_dtype = _out_dtype(self.dtype, x, scale)
    y = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    y = y * jax.lax.rsqrt(jnp.mean(jnp.square(y), axis=-1, keepdims=True) + self.epsilon)
    if self.cast_before_scale:
      y = y.astype(x.dtype)
    if scale is not None:
      y = scale * y if self.cast_before_scale else y * scale.astype(y.dtype)
    return y.astype(out_dtype)


class BatchNorm(nnx.Module):
  """Batch normalisation over every axis but `axis` (the features), torch numerics.

  - `train=True` normalises with the batch mean and the BIASED batch variance, and updates the
    running statistics with the UNBIASED one (n / (n - 1)), as torch's BatchNorm does;
  - `momentum` is torch's convention: new = (1 - momentum) * old + momentum * batch (torch 0.1
    is Flax momentum 0.9);
  - `train=False` uses the running statistics `mean` and `var` (`nnx.BatchStat`, float32).
  Under a data-parallel mesh the batch statistics are over the global batch (like SyncBN), not
  per device as the official multi-GPU runs. Gradients flow through the batch statistics, as in
  torch. `rngs` is accepted and unused (the shared call convention).

  Args:
    num_features: size of x along `axis`.
    axis: the feature axis (-1: NHWC / BatchNorm2d on channels-last; e.g. 2 for (B, T, H, E)
      statistics per H).
    epsilon: added to the variance (torch 1e-5).
    momentum: torch convention (above).
    use_scale, use_bias: the affine part (torch `affine=False`: both False).
    param_axes: logical names of the params and statistics.
  """

  def __init__(self, num_features: int, *, axis: int = -1, epsilon: float = 1e-5,
               momentum: float = 0.1, use_scale: bool = True, use_bias: bool = True,
               param_axes: Axes = ("embed",), dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: Any = None):
    del rngs
    validation.check_positive("num_features", num_features)
    if not 0.0 <= momentum <= 1.0:
      raise ValueError(f"BatchNorm momentum={momentum!r} must lie in [0, 1] (torch convention: "
                       "the weight of the new batch).")
    self.axis = axis
    self.epsilon = epsilon
    self.momentum = momentum
    self.dtype = dtype
    self.scale, self.bias = _affine(num_features, use_scale, use_bias, param_axes, param_dtype)
    axes, shape = tuple(param_axes), (num_features,)
    self.mean = nnx.BatchStat(nnx.with_partitioning(nnx.initializers.zeros, axes)(
        None, shape, jnp.float32))
    self.var = nnx.BatchStat(nnx.with_partitioning(nnx.initializers.ones, axes)(
        None, shape, jnp.float32))

  def __call__(self, x: jax.Array, *, train: bool = False, rngs: Any = None) -> jax.Array:
    del rngs
    axis = self.axis % x.ndim
    if x.shape[axis] != self.mean.shape[0]:
      raise ValueError(f"BatchNorm built for {self.mean.shape[0]} features got x.shape="
                       f"{x.shape} (feature axis {self.axis}).")
    reduce = tuple(a for a in range(x.ndim) if a != axis)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    if train:
      mean = jnp.mean(xf, axis=reduce)
      var = jnp.mean(jnp.square(xf - mean.reshape(shape)), axis=reduce)
      n = math.prod(x.shape[a] for a in reduce)
      unbiased = var * (n / max(n - 1, 1))
      m = self.momentum
      self.mean[...] = (1 - m) * self.mean[...] + m * jax.lax.stop_gradient(mean)
      self.var[...] = (1 - m) * self.var[...] + m * jax.lax.stop_gradient(unbiased)
    else:
      mean, var = self.mean[...], self.var[...]
    scale = self.scale[...] if self.scale is not None else None
    bias = self.bias[...] if self.bias is not None else None
    mul = jax.lax.rsqrt(var + self.epsilon)
    if scale is not None:
      mul = mul * scale
    y = (xf - mean.reshape(shape)) * mul.reshape(shape)
    if bias is not None:
      y = y + bias.reshape(shape)
    return y.astype(_out_dtype(self.dtype, x, scale, bias))
