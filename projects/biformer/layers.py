"""Small generic layers BiFormer needs: initialisers, norms, convs, MLP and drop path.

All are NHWC and carry logical-axis partitioning metadata. They are generic (nothing here is
BiFormer-specific) and are candidates for `common/layers` once that library settles.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

# Switches off Flax eager variable sharding, so the logical-axis metadata below needs no mesh.
import common  # noqa: F401  pylint: disable=unused-import

Dtype = Any

# Official init [B:L260-267]: Linear weights trunc_normal(std=.02) with timm's absolute
# bounds (-2, 2), i.e. practically an untruncated N(0, 0.02); biases zero.
linear_kernel_init = jax.nn.initializers.normal(stddev=0.02)


def torch_conv_kernel_init(key, shape, dtype=jnp.float32):
  """PyTorch's default Conv2d weight init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (HWIO)."""
  fan_in = shape[0] * shape[1] * shape[2]
  bound = 1.0 / math.sqrt(fan_in)
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def torch_conv_bias_init(fan_in: int):
  """PyTorch's default Conv2d bias init, which depends on the kernel's fan-in."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def linear(din: int, dout: int, axes: tuple, *, use_bias: bool = True, dtype: Dtype = None,
           param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs) -> nnx.Linear:
  """nn.Linear equivalent; `axes` are the logical names of the (in, out) kernel axes."""
  return nnx.Linear(
      din, dout, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
      kernel_init=nnx.with_partitioning(linear_kernel_init, axes),
      bias_init=nnx.with_partitioning(jax.nn.initializers.zeros, (axes[1],)),
      rngs=rngs)


def conv2d(din: int, dout: int, kernel: int, *, stride: int = 1, padding: int = 0,
           groups: int = 1, dtype: Dtype = None, param_dtype: Dtype = jnp.float32,
           rngs: nnx.Rngs) -> nnx.Conv:
  """nn.Conv2d equivalent on NHWC with explicit symmetric padding (as torch pads)."""
  fan_in = (din // groups) * kernel * kernel
  return nnx.Conv(
      din, dout, kernel_size=(kernel, kernel), strides=(stride, stride),
      padding=((padding, padding), (padding, padding)), feature_group_count=groups,
      dtype=dtype, param_dtype=param_dtype,
      kernel_init=nnx.with_partitioning(torch_conv_kernel_init, (None, None, None, "embed")),
      bias_init=nnx.with_partitioning(torch_conv_bias_init(fan_in), ("embed",)),
      rngs=rngs)


def depthwise_conv2d(dim: int, kernel: int, *, dtype: Dtype = None,
                     param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs) -> nnx.Conv:
  """Depthwise 'same' conv (groups=dim, padding kernel//2), e.g. LePE and the pos-embed."""
  return conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim, dtype=dtype,
                param_dtype=param_dtype, rngs=rngs)


def layer_norm(dim: int, *, eps: float = 1e-6, dtype: Dtype = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs) -> nnx.LayerNorm:
  """nn.LayerNorm over channels. Two-pass variance, as torch computes it."""
  return nnx.LayerNorm(
      dim, epsilon=eps, dtype=dtype, param_dtype=param_dtype, use_fast_variance=False,
      scale_init=nnx.with_partitioning(jax.nn.initializers.ones, ("embed",)),
      bias_init=nnx.with_partitioning(jax.nn.initializers.zeros, ("embed",)),
      rngs=rngs)


def batch_norm(dim: int, *, dtype: Dtype = None, param_dtype: Dtype = jnp.float32,
               rngs: nnx.Rngs) -> nnx.BatchNorm:
  """nn.BatchNorm2d over channels (eps 1e-5; torch momentum 0.1 is flax momentum 0.9)."""
  return nnx.BatchNorm(
      dim, epsilon=1e-5, momentum=0.9, dtype=dtype, param_dtype=param_dtype,
      use_fast_variance=False,
      scale_init=nnx.with_partitioning(jax.nn.initializers.ones, ("embed",)),
      bias_init=nnx.with_partitioning(jax.nn.initializers.zeros, ("embed",)),
      rngs=rngs)


class Mlp(nnx.Module):
  """Linear -> exact (erf) GELU -> Linear, as torch's nn.GELU() default."""

  def __init__(self, dim: int, hidden: int, *, dtype: Dtype = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    self.fc1 = linear(dim, hidden, ("embed", "mlp"), dtype=dtype, param_dtype=param_dtype,
                      rngs=rngs)
    self.fc2 = linear(hidden, dim, ("mlp", "embed"), dtype=dtype, param_dtype=param_dtype,
                      rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))


class DropPath(nnx.Module):
  """Stochastic depth per sample (timm `DropPath`, scale_by_keep=True).

  Active only when `deterministic` is False (`model.train()`); `model.eval()` turns it off.
  """

  def __init__(self, rate: float, *, rngs: nnx.Rngs | None = None):
    if not 0.0 <= rate < 1.0:
      raise ValueError(f"drop path rate={rate!r}: allowed range is [0, 1).")
    self.rate = rate
    self.deterministic = False
    # Same stream handling as nnx.Dropout: a forked 'dropout' stream owned by the layer.
    self.rngs = rngs["dropout"].fork() if (rngs is not None and rate > 0) else None

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.deterministic or self.rate == 0.0:
      return x
    if self.rngs is None:
      raise ValueError("DropPath with rate > 0 in training mode needs rngs with a 'dropout' "
                       "stream at construction.")
    keep = 1.0 - self.rate
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = jax.random.bernoulli(self.rngs(), keep, shape)
    return x * (mask.astype(x.dtype) / keep)
