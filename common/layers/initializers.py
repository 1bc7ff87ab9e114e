"""Initialisers that the stock ones get wrong for multi-axis kernels.

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
