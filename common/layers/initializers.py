"""Initialisers the stock ones lack: multi-axis kernels, torch defaults, absolute trunc-normal.

`jax.nn.initializers.variance_scaling` computes fans from the last two axes, so a (D, H, Dh)
attention kernel would get fan_in = H * D. Projections are initialised as the 2-D matrix they
really are (fan_in = prod(in_axes), fan_out = prod(out_axes)) and then reshaped, which is also
what Flax linen's DenseGeneral and T5X do.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import jax

Initializer = Callable[..., jax.Array]


def as_matrix(init: Initializer, num_in_axes: int) -> Initializer:
  """Wraps `init` so it sees shape (prod(shape[:num_in_axes]), prod(rest))."""

  def wrapped(key: jax.Array, shape: Sequence[int], dtype=jax.numpy.float32) -> jax.Array:
    fan_in = math.prod(shape[:num_in_axes])
    fan_out = math.prod(shape[num_in_axes:])
    return init(key, (fan_in, fan_out), dtype).reshape(shape)

  return wrapped


def torch_uniform(fan_in: int | None = None) -> Initializer:
  """torch's default Linear/Conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

  torch draws weights with kaiming_uniform_(a=sqrt(5)), whose bound reduces to 1/sqrt(fan_in),
  and biases with the same bound. With `fan_in=None` the fan-in is read from the shape as
  prod(shape[:-1]), which is right for our (in, out) Linear and HWIO conv kernels; a bias must
  be given the fan-in of its kernel.
  """

  def init(key: jax.Array, shape: Sequence[int], dtype=jax.numpy.float32) -> jax.Array:
    n = math.prod(shape[:-1]) if fan_in is None else fan_in
    bound = 1.0 / math.sqrt(n) if n > 0 else 0.0
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def trunc_normal(std: float = 0.02, lower: float = -2.0, upper: float = 2.0) -> Initializer:
  """timm/I-JEPA `trunc_normal_(std=...)`: N(0, std^2) cut at ABSOLUTE bounds [lower, upper].

  The bounds are values, not standard deviations: at std 0.02 they sit 100 sigmas out, so this
  is in effect an untruncated normal (jax's `truncated_normal` initialiser cuts at +-2 std).
  Drawn in float32 and cast, so bfloat16 parameters get the same distribution.
  """

  def init(key: jax.Array, shape: Sequence[int], dtype=jax.numpy.float32) -> jax.Array:
    z = jax.random.truncated_normal(key, lower / std, upper / std, shape, jax.numpy.float32)
    return (std * z).astype(dtype)

  return init
