"""Small NHWC building blocks with PyTorch-equivalent numerics (convs, norms, dropout).

These are generic (nothing here knows about super tokens) and are candidates for
`common/layers` once that package settles: `Conv2d`, `Dense`, `BatchNorm`, `LayerNorm`,
`dropout` and `drop_path`.

Numerics follow torch, because the official STViT weights were trained with it:
- convolutions take explicit symmetric padding (torch `padding=k//2`); Flax's 'SAME' pads
  (0, 1) for stride 2 on even inputs and would shift every downsampled map;
- `BatchNorm` normalises with the biased batch variance but updates the running variance
  with the unbiased one, with torch's momentum convention (new = (1-m)*old + m*batch);
- `LayerNorm` uses the two-pass variance, as torch does.

Every layer takes `dtype` (compute dtype; None keeps the promoted input/param dtype) and
`param_dtype`, and its parameters carry logical-axis names for the trainer's sharding rules.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import dtypes

Dtype = Any
Axes = tuple[str | None, ...]


class KeyStream:
  """A stand-in for `nnx.Rngs` during construction: `.params()` yields fresh keys.

  Keys are `fold_in(root, n)` with a Python counter. `nnx.Rngs` instead writes its counter
  Variable on every draw, and under a trace (jax.jit / nnx.eval_shape init) each such write
  inspects the tracer's sharding, which builds an error message by walking the whole trace
  so far: init tracing becomes quadratic in the number of parameters (flax 0.12 / jax 0.10).
  With this stream SViT-L traces in a fraction of the time.
  """

  def __init__(self, root: jax.Array):
    self._root = root
    self._count = 0

  def params(self) -> jax.Array:
    self._count += 1
    return jax.random.fold_in(self._root, self._count)


def param(init, names: Axes, key: jax.Array, shape: Sequence[int], dtype: Dtype) -> nnx.Param:
  """Creates a trainable parameter that carries logical partitioning metadata."""
  return nnx.Param(nnx.with_partitioning(init, names)(key, tuple(shape), dtype))


def torch_uniform(fan_in: int):
  """torch's default Conv2d/Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b.

  kaiming_uniform_(a=sqrt(5)) reduces to this bound, and the bias uses the same one.
  """
  bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def trunc_normal(std: float):
  """timm trunc_normal_(std): normal truncated at +-2 (absolute, i.e. +-2/std sigmas)."""

  def init(key, shape, dtype=jnp.float32):
    lim = 2.0 / std
    return std * jax.random.truncated_normal(key, -lim, lim, shape, dtype)

  return init


class Conv2d(nnx.Module):
  """NHWC 2-D convolution with torch padding semantics and torch's default init.

  The kernel is HWIO: (kh, kw, in_features // groups, out_features).
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: int, *,
               stride: int = 1, padding: int | None = None, groups: int = 1,
               use_bias: bool = True, kernel_axes: Axes = (None, None, None, "embed"),
               dtype: Dtype = None, param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    if in_features % groups or out_features % groups:
      raise ValueError(f"Conv2d groups={groups} must divide in_features={in_features} and "
                       f"out_features={out_features}.")
    self.stride = stride
    self.padding = kernel_size // 2 if padding is None else padding
    self.groups = groups
    self.dtype = dtype
    fan_in = (in_features // groups) * kernel_size * kernel_size
    init = torch_uniform(fan_in)
    self.kernel = param(init, kernel_axes, rngs.params(),
                         (kernel_size, kernel_size, in_features // groups, out_features),
                         param_dtype)
    self.bias = (param(init, kernel_axes[-1:], rngs.params(), (out_features,), param_dtype)
                 if use_bias else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    bias = self.bias[...] if self.bias is not None else None
    x, kernel, bias = dtypes.promote_dtype((x, self.kernel[...], bias), dtype=self.dtype)
    p = self.padding
    y = jax.lax.conv_general_dilated(
        x, kernel, window_strides=(self.stride, self.stride), padding=((p, p), (p, p)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=self.groups)
    if bias is not None:
      y = y + bias
    return y


class Dense(nnx.Module):
  """Linear map over the last axis; also serves as a torch 1x1 conv on NHWC maps."""

  def __init__(self, in_features: int, out_features: int, *, use_bias: bool = True,
               kernel_axes: Axes = ("embed", "mlp"), kernel_init=None,
               bias_init=None, dtype: Dtype = None, param_dtype: Dtype = jnp.float32,
               rngs: nnx.Rngs):
    self.dtype = dtype
    default = torch_uniform(in_features)
    self.kernel = param(kernel_init or default, kernel_axes, rngs.params(),
                         (in_features, out_features), param_dtype)
    self.bias = (param(bias_init or default, kernel_axes[-1:], rngs.params(),
                        (out_features,), param_dtype) if use_bias else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    bias = self.bias[...] if self.bias is not None else None
    x, kernel, bias = dtypes.promote_dtype((x, self.kernel[...], bias), dtype=self.dtype)
    y = jnp.einsum("...i,io->...o", x, kernel)
    if bias is not None:
      y = y + bias
    return y


class BatchNorm(nnx.Module):
  """BatchNorm over all axes but the last (torch BatchNorm2d on NHWC), eps 1e-5.

  `momentum` uses torch's convention (0.1 = weight of the new batch). Under a data-parallel
  mesh the batch statistics are global (like SyncBN), unlike the official per-GPU BN.
  """

  def __init__(self, num_features: int, *, epsilon: float = 1e-5, momentum: float = 0.1,
               axis_name: str = "embed", dtype: Dtype = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    self.epsilon = epsilon
    self.momentum = momentum
    self.dtype = dtype
    names = (axis_name,)
    shape = (num_features,)
    self.scale = param(nnx.initializers.ones, names, rngs.params(), shape, param_dtype)
    self.bias = param(nnx.initializers.zeros, names, rngs.params(), shape, param_dtype)
    # Running statistics are state, not trainable parameters; kept in float32.
    self.mean = nnx.BatchStat(
        nnx.with_partitioning(nnx.initializers.zeros, names)(None, shape, jnp.float32))
    self.var = nnx.BatchStat(
        nnx.with_partitioning(nnx.initializers.ones, names)(None, shape, jnp.float32))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    axes = tuple(range(x.ndim - 1))
    if train:
      xf = x.astype(jnp.float32)
      mean = jnp.mean(xf, axes)
      var = jnp.mean(jnp.square(xf - mean), axes)
      n = math.prod(x.shape[:-1])
      # torch stores the unbiased variance in running_var but normalises with the biased one.
      unbiased = var * (n / max(n - 1, 1))
      m = self.momentum
      self.mean[...] = (1 - m) * self.mean[...] + m * jax.lax.stop_gradient(mean)
      self.var[...] = (1 - m) * self.var[...] + m * jax.lax.stop_gradient(unbiased)
    else:
      mean, var = self.mean[...], self.var[...]
    x, mean, var, scale, bias = dtypes.promote_dtype(
        (x, mean, var, self.scale[...], self.bias[...]), dtype=self.dtype)
    return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias


class LayerNorm(nnx.Module):
  """LayerNorm over the channel (last) axis with the two-pass variance, like torch."""

  def __init__(self, num_features: int, *, epsilon: float = 1e-6, dtype: Dtype = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    self.epsilon = epsilon
    self.dtype = dtype
    shape = (num_features,)
    self.scale = param(nnx.initializers.ones, ("embed",), rngs.params(), shape, param_dtype)
    self.bias = param(nnx.initializers.zeros, ("embed",), rngs.params(), shape, param_dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    x, scale, bias = dtypes.promote_dtype((x, self.scale[...], self.bias[...]),
                                          dtype=self.dtype)
    # Statistics in at least float32 so that bfloat16 compute stays stable.
    xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean = jnp.mean(xf, -1, keepdims=True)
    var = jnp.mean(jnp.square(xf - mean), -1, keepdims=True)
    y = ((xf - mean) * jax.lax.rsqrt(var + self.epsilon)).astype(x.dtype)
    return y * scale + bias


def _need_key(rngs: nnx.Rngs | None, what: str) -> jax.Array:
  if rngs is None:
    raise ValueError(f"{what} is active in training (train=True, rate > 0) but rngs=None: "
                     "pass rngs=nnx.Rngs(dropout=...) to the model call.")
  return rngs.dropout()


def dropout(x: jax.Array, rate: float, *, train: bool, rngs: nnx.Rngs | None) -> jax.Array:
  """Element-wise dropout (torch nn.Dropout): identity unless training with rate > 0."""
  if not train or rate == 0.0:
    return x
  keep = 1.0 - rate
  mask = jax.random.bernoulli(_need_key(rngs, "dropout"), keep, x.shape)
  return jnp.where(mask, x / keep, jnp.zeros_like(x))


def drop_path(x: jax.Array, rate: float, *, train: bool, rngs: nnx.Rngs | None) -> jax.Array:
  """Stochastic depth per sample (timm DropPath, scale_by_keep=True)."""
  if not train or rate == 0.0:
    return x
  keep = 1.0 - rate
  shape = (x.shape[0],) + (1,) * (x.ndim - 1)
  mask = jax.random.bernoulli(_need_key(rngs, "drop_path"), keep, shape)
  return x * (mask.astype(x.dtype) / keep)


def gelu(x: jax.Array) -> jax.Array:
  """Exact (erf) GELU, torch nn.GELU's default."""
  return jax.nn.gelu(x, approximate=False)
