"""T5's relative position bias: bucketed key-minus-query offsets -> a learned bias per head.

The bucketing is Mesh TensorFlow's `_relative_position_bucket` (used unchanged by T5X):
half the buckets are exact small offsets, the other half grow logarithmically up to
`max_distance`, beyond which everything shares the last bucket. Bidirectional (encoder)
stacks split the buckets between keys before and after the query; causal (decoder) stacks
give every future key bucket 0, which the causal mask hides anyway.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)


def relative_position_bucket(relative_position, *, bidirectional: bool = True,
                             num_buckets: int = 32, max_distance: int = 128):
  """Bucket ids (int32) for `relative_position` = key position - query position.

  Works on numpy or jax integer arrays.
  """
  xp = jnp if isinstance(relative_position, jax.Array) else np
  ret = 0
  n = -relative_position
  if bidirectional:
    num_buckets //= 2
    ret += (n < 0).astype(xp.int32) * num_buckets
    n = xp.abs(n)
  else:
    n = xp.maximum(n, 0)
  max_exact = num_buckets // 2
  is_small = n < max_exact
  # Guard log(0) for the small offsets: their large-branch value is discarded by the `where`.
  n_large = xp.maximum(n, max_exact).astype(xp.float32)
  val_if_large = max_exact + (
      xp.log(n_large / max_exact + np.finfo(np.float32).eps) / math.log(max_distance / max_exact)
      * (num_buckets - max_exact)).astype(xp.int32)
  val_if_large = xp.minimum(val_if_large, num_buckets - 1)
  return (ret + xp.where(is_small, n, val_if_large)).astype(xp.int32)


class RelativePositionBias(nnx.Module):
  """Learned [num_buckets, num_heads] table (axes None, 'heads') -> bias [1, H, Tq, Tk].

  One instance is shared by all layers of a stack, as in T5. The initialiser (T5X-like
  variance scaling, fan_avg uniform) is a documented choice, not checked against T5X.
  """

  def __init__(self, num_heads: int, *, bidirectional: bool, num_buckets: int = 32,
               max_distance: int = 128, dtype: Any = None, param_dtype: Any = jnp.float32,
               rngs: nnx.Rngs):
    self.bidirectional = bidirectional
    self.num_buckets = num_buckets
    self.max_distance = max_distance
    self.dtype = dtype
    init = nnx.with_partitioning(nnx.initializers.variance_scaling(1.0, "fan_avg", "uniform"),
                                 (None, "heads"))
    self.embedding = nnx.Param(init(rngs.params(), (num_buckets, num_heads), param_dtype))

  def __call__(self, q_len: int, k_len: int) -> jax.Array:
    # Positions are static, so the buckets are a numpy constant folded into the program.
    rel = np.arange(k_len)[None, :] - np.arange(q_len)[:, None]
    buckets = relative_position_bucket(rel, bidirectional=self.bidirectional,
                                       num_buckets=self.num_buckets,
                                       max_distance=self.max_distance)
    table = self.embedding[...]
    bias = jnp.take(table, jnp.asarray(buckets), axis=0)      # [Tq, Tk, H]
    bias = jnp.transpose(bias, (2, 0, 1))[None]                # [1, H, Tq, Tk]
    return bias.astype(self.dtype or table.dtype)
