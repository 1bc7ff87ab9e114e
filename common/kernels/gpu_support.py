"""What the Pallas GPU (Triton) wrappers share: BlockSpecs, power-of-two padding, compiler params.

Both GPU bodies run on a (B, H, x) grid where a program reads either a whole head of an
operand (`head`) or its x-th tile of rows (`tile`), and Triton needs power-of-two sizes
for every loaded array (`pad_pow2`).
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


def head(shape_tail):
  """BlockSpec of a whole head: [B, H, *tail] -> *tail for grid (b, h, x)."""
  zeros = (0,) * len(shape_tail)
  return pl.BlockSpec((None, None) + tuple(shape_tail),
                      lambda b, h, x: (b, h) + zeros)


def tile(rows, *tail):
  """BlockSpec of the x-th `rows`-row tile of a head."""
  zeros = (0,) * len(tail)
  return pl.BlockSpec((None, None, rows) + tuple(tail),
                      lambda b, h, x: (b, h, x) + zeros)


def dkv_call(kernel, ops, in_specs, *, k, v, block_k, compiler_params, interpret, name):
  """(dk, dv) from a dk/dv body on the (B, H, Tk // block_k) grid, whose program x writes the
  x-th `block_k`-row tile of both; typed like k and v, varying like ops[0] under shard_map."""
  b, h, tk, d = k.shape
  ops = pallas_support.match_varying(*ops)
  return pl.pallas_call(
      kernel, grid=(b, h, tk // block_k), in_specs=in_specs,
      out_specs=[tile(block_k, d), tile(block_k, d)],
      out_shape=[pallas_support.out_struct(k.shape, k.dtype, ops[0]),
                 pallas_support.out_struct(v.shape, v.dtype, ops[0])],
      compiler_params=compiler_params, interpret=interpret, name=name)(*ops)
