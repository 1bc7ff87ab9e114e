"""What the Pallas GPU (Triton) wrappers share: BlockSpecs, power-of-two padding, compiler params.

Both GPU bodies run on a (B, H, x) grid where a program reads either a whole head of an
operand (`head`) or its x-th tile of rows (`tile`), and Triton needs power-of-two sizes
for every loaded array (`pad_pow2`). With GQA (`group` = H // H_kv > 1) the k/v specs map
query head h to kv head h // group; segment ids ([B, T], no head axis) and relative tables
([Ht, R, D], no batch axis) have their own specs.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from common.kernels import block_size as block_size_lib
from common.kernels import pallas_support


def pad_pow2(x, fill=-1):
  """Pads the last axis to a power of two (Triton loads need power-of-two sizes)."""
  n = x.shape[-1]
  m = block_size_lib.next_power_of_2(n)
  if m == n:
    return x
  pad = [(0, 0)] * (x.ndim - 1) + [(0, m - n)]
  return jnp.pad(x, pad, constant_values=fill)


def compiler_params(num_stages: int):
  return plgpu.CompilerParams(num_warps=4, num_stages=num_stages)


def head(shape_tail, group: int = 1):
  """BlockSpec of a whole head: [B, H, *tail] -> *tail for grid (b, h, x); with group > 1
  the operand has H / group heads and query head h reads head h // group."""
  zeros = (0,) * len(shape_tail)
  return pl.BlockSpec((None, None) + tuple(shape_tail),
                      lambda b, h, x: (b, h // group) + zeros)


def tile(rows, *tail, group: int = 1):
  """BlockSpec of the x-th `rows`-row tile of a head (of head h // group)."""
  zeros = (0,) * len(tail)
  return pl.BlockSpec((None, None, rows) + tuple(tail),
                      lambda b, h, x: (b, h // group, x) + zeros)


def batch_head(length):
  """BlockSpec of a whole row of a [B, T] array (segment ids) for grid (b, h, x)."""
  return pl.BlockSpec((None, length), lambda b, h, x: (b, 0))


def batch_tile(rows):
  """BlockSpec of the x-th `rows` entries of a row of a [B, T] array."""
  return pl.BlockSpec((None, rows), lambda b, h, x: (b, x))


def table(t):
  """BlockSpec of a relative table [Ht, R, D]: head h's (Ht = H) or the shared one (Ht = 1)."""
  per_head = t.shape[0] > 1
  return pl.BlockSpec((None,) + t.shape[1:],
                      lambda b, h, x: (h if per_head else 0, 0, 0))


def dkv_call(kernel, ops, in_specs, *, q, k, v, block_k, compiler_params, interpret, name):
  """(dk, dv) from a dk/dv body on the (B, H, Tk // block_k) grid, whose program x writes the
  x-th `block_k`-row tile of both, for query head h; varying like ops[0] under shard_map.

  Without GQA they are typed like k and v. With GQA (H_kv < H) they are per-query-head f32
  [B, H, Tk, D], which `sum_groups` reduces to k's heads.
  """
  b, h = q.shape[:2]
  tk, d = k.shape[2:]
  gqa = k.shape[1] != h
  ops = pallas_support.match_varying(*ops)
  dtype = lambda x: jnp.float32 if gqa else x.dtype
  return pl.pallas_call(
      kernel, grid=(b, h, tk // block_k), in_specs=in_specs,
      out_specs=[tile(block_k, d), tile(block_k, d)],
      out_shape=[pallas_support.out_struct((b, h, tk, d), dtype(k), ops[0]),
                 pallas_support.out_struct((b, h, tk, d), dtype(v), ops[0])],
      compiler_params=compiler_params, interpret=interpret, name=name)(*ops)


def sum_groups(grad, like):
  """Per-query-head [B, H, T, D] gradient -> `like`'s [B, H_kv, T, D] and dtype."""
  b, hk, t, d = like.shape
  if grad.shape[1] == hk:
    return grad
  return grad.reshape(b, hk, grad.shape[1] // hk, t, d).sum(2).astype(like.dtype)
