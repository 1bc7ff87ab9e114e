"""Pallas GPU (Triton lowering) bodies of block-sparse attention: forward, dq and dk/dv.

GPU programs cannot be fed blocks by a DMA pipeline, so each program gets a
whole head's K/V (or Q/dO) as a pointer-sized BlockSpec, loads its block list
and gathers the selected blocks in-kernel with dynamic slices:

* forward / dq: grid (B, H, nQ); a program loops over its query block's
  valid slots (lists are compacted, so the trip count is the number of
  valid slots and empty slots cost nothing).
* dk/dv: grid (B, H, nK); a program loops over the query blocks that selected
  its kv block: the run of (q block, kv block) pairs sorted by kv block
  (`sparse_indices.pairs_by_kv_block`), given as a start and a count per kv
  block. The longest run is nQ; there is no padded inverse map.

Triton needs power-of-two tensor sizes: block_q, block_k and D must be powers
of two (>= 16 for tensor-core dots, checked by the op on real GPUs), and the
1-D index arrays are padded here to a power of two with -1.
"""
from __future__ import annotations

import functools

import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from common.kernels import attention_math
from common.kernels import block_size as block_size_lib
from common.kernels import pallas_support
from common.kernels import sparse_indices

_NT = (((1,), (1,)), ((), ()))  # a @ b.T
_TN = (((0,), (0,)), ((), ()))  # a.T @ b
_NN = (((1,), (0,)), ((), ()))  # a @ b


def _dot(a, b, dims):
  return lax.dot_general(a, b, dims, preferred_element_type=jnp.float32)


def pad_pow2(x, fill=-1):
  """Pads the last axis to a power of two (Triton loads need power-of-two sizes)."""
  n = x.shape[-1]
  m = block_size_lib.next_power_of_2(n)
  if m == n:
    return x
  pad = [(0, 0)] * (x.ndim - 1) + [(0, m - n)]
  return jnp.pad(x, pad, constant_values=fill)


def _compiler_params():
  return plgpu.CompilerParams(num_warps=4, num_stages=2)


def _causal_mask(qpos, kvpos_ref, start, block_k):
  if qpos is None:
    return None
  return qpos[:, None] >= kvpos_ref[pl.ds(start, block_k)][None, :]


def _fwd_kernel(q_ref, k_ref, v_ref, idx_ref, *refs, causal, block_k, scale):
  if causal:
    qpos_ref, kvpos_ref, o_ref, lse_ref = refs
    qpos = qpos_ref[...]
  else:
    (o_ref, lse_ref), qpos, kvpos_ref = refs, None, None
  q = q_ref[...]
  count = jnp.sum((idx_ref[...] >= 0).astype(jnp.int32))

  def body(j, carry):
    start = pl.multiple_of(idx_ref[j] * block_k, block_k)
    s = _dot(q, k_ref[pl.ds(start, block_k), :], _NT) * scale
    mask = _causal_mask(qpos, kvpos_ref, start, block_k)
    return attention_math.online_softmax_update(
        *carry, s, mask, v_ref[pl.ds(start, block_k), :],
        lambda p, v: _dot(p, v, _NN))

  bq, d = q.shape
  init = (jnp.full((bq,), attention_math.MASK_VALUE, jnp.float32),
          jnp.zeros((bq,), jnp.float32), jnp.zeros((bq, d), jnp.float32))
  o, lse = attention_math.finalize(*lax.fori_loop(0, count, body, init))
  o_ref[...] = o.astype(o_ref.dtype)
  lse_ref[...] = lse


def _dq_kernel(q_ref, k_ref, v_ref, idx_ref, *refs, causal, block_k, scale):
  if causal:
    qpos_ref, kvpos_ref, do_ref, lse_ref, delta_ref, dq_ref = refs
    qpos = qpos_ref[...]
  else:
    (do_ref, lse_ref, delta_ref, dq_ref), qpos, kvpos_ref = refs, None, None
  q, do = q_ref[...], do_ref[...]
  lse, delta = lse_ref[...][:, None], delta_ref[...][:, None]
  count = jnp.sum((idx_ref[...] >= 0).astype(jnp.int32))

  def body(j, dq):
    start = pl.multiple_of(idx_ref[j] * block_k, block_k)
    k = k_ref[pl.ds(start, block_k), :]
    p = jnp.exp(_dot(q, k, _NT) * scale - lse)
    mask = _causal_mask(qpos, kvpos_ref, start, block_k)
    if mask is not None:
      p = jnp.where(mask, p, 0.0)
    ds = p * (_dot(do, v_ref[pl.ds(start, block_k), :], _NT) - delta)
    return dq + _dot(ds.astype(k.dtype), k, _NN)

  dq = lax.fori_loop(0, count, body, jnp.zeros(q.shape, jnp.float32))
  dq_ref[...] = (dq * scale).astype(dq_ref.dtype)


def _dkv_kernel(q_ref, do_ref, lse_ref, delta_ref, k_ref, v_ref, pair_q_ref,
                start_ref, count_ref, *refs, causal, block_q, scale):
  if causal:
    qpos_ref, kvpos_ref, dk_ref, dv_ref = refs
    kvpos = kvpos_ref[...]
  else:
    (dk_ref, dv_ref), qpos_ref, kvpos = refs, None, None
  kb = pl.program_id(2)
  k, v = k_ref[...], v_ref[...]
  begin = start_ref[kb]

  def body(t, carry):
    dk, dv = carry
    qs = pl.multiple_of(pair_q_ref[t] * block_q, block_q)
    rows = pl.ds(qs, block_q)
    q, do = q_ref[rows, :], do_ref[rows, :]
    p = jnp.exp(_dot(q, k, _NT) * scale - lse_ref[rows][:, None])
    if causal:
      p = jnp.where(qpos_ref[rows][:, None] >= kvpos[None, :], p, 0.0)
    ds = p * (_dot(do, v, _NT) - delta_ref[rows][:, None])
    return (dk + _dot(ds.astype(q.dtype), q, _TN),
            dv + _dot(p.astype(do.dtype), do, _TN))

  zeros = jnp.zeros(k.shape, jnp.float32)
  dk, dv = lax.fori_loop(begin, begin + count_ref[kb], body, (zeros, zeros))
  dk_ref[...] = (dk * scale).astype(dk_ref.dtype)
  dv_ref[...] = dv.astype(dv_ref.dtype)


def _head(shape_tail):
  """BlockSpec of a whole head: [B, H, *tail] -> *tail for grid (b, h, x)."""
  zeros = (0,) * len(shape_tail)
  return pl.BlockSpec((None, None) + tuple(shape_tail),
                      lambda b, h, x: (b, h) + zeros)


def _tile(rows, *tail):
  """BlockSpec of the x-th `rows`-row tile of a head."""
  zeros = (0,) * len(tail)
  return pl.BlockSpec((None, None, rows) + tuple(tail),
                      lambda b, h, x: (b, h, x) + zeros)


def forward(q, k, v, idx, q_pos, kv_pos, *, block_q, block_k, causal, scale,
            interpret):
  """Returns (o, lse [B, H, Tq] internal). idx: compacted [B, H, nQ, n_sel]."""
  b, h, tq, d = q.shape
  tk = k.shape[2]
  idx = pad_pow2(idx)
  ops = [q, k, v, idx]
  specs = [_tile(block_q, d), _head((tk, d)), _head((tk, d)),
           pl.BlockSpec((None, None, None, idx.shape[-1]),
                        lambda bi, hi, i: (bi, hi, i, 0))]
  if causal:
    ops += [q_pos, kv_pos]
    specs += [_tile(block_q), _head((tk,))]
  ops = pallas_support.match_varying(*ops)
  o, lse = pl.pallas_call(
      functools.partial(_fwd_kernel, causal=causal, block_k=block_k,
                        scale=scale),
      grid=(b, h, tq // block_q), in_specs=specs,
      out_specs=[_tile(block_q, d), _tile(block_q)],
      out_shape=[pallas_support.out_struct(q.shape, q.dtype, ops[0]),
                 pallas_support.out_struct((b, h, tq), jnp.float32, ops[0])],
      compiler_params=_compiler_params(), interpret=interpret,
      name="block_sparse_fwd_gpu")(*ops)
  return o, lse


def backward(q, k, v, idx, q_pos, kv_pos, lse, do, delta, *, block_q, block_k,
             causal, scale, interpret):
  """Returns (dq, dk, dv) in the input dtypes."""
  b, h, tq, d = q.shape
  tk = k.shape[2]
  nk = tk // block_k
  params = dict(causal=causal, scale=scale)

  idx_p = pad_pow2(idx)
  ops = [q, k, v, idx_p]
  specs = [_tile(block_q, d), _head((tk, d)), _head((tk, d)),
           pl.BlockSpec((None, None, None, idx_p.shape[-1]),
                        lambda bi, hi, i: (bi, hi, i, 0))]
  if causal:
    ops += [q_pos, kv_pos]
    specs += [_tile(block_q), _head((tk,))]
  ops += [do, lse, delta]
  specs += [_tile(block_q, d), _tile(block_q), _tile(block_q)]
  ops = pallas_support.match_varying(*ops)
  dq = pl.pallas_call(
      functools.partial(_dq_kernel, block_k=block_k, **params),
      grid=(b, h, tq // block_q), in_specs=specs,
      out_specs=_tile(block_q, d),
      out_shape=pallas_support.out_struct(q.shape, q.dtype, ops[0]),
      compiler_params=_compiler_params(), interpret=interpret,
      name="block_sparse_dq_gpu")(*ops)

  pair_q, pair_kv = sparse_indices.pairs_by_kv_block(idx, nk,
                                                     one_per_kv_block=False)
  start, count = sparse_indices.run_starts(pair_kv, nk)
  pair_q, start, count = pad_pow2(pair_q), pad_pow2(start, 0), pad_pow2(count, 0)
  ops = [q, do, lse, delta, k, v, pair_q, start, count]
  specs = [_head((tq, d)), _head((tq, d)), _head((tq,)), _head((tq,)),
           _tile(block_k, d), _tile(block_k, d), _head(pair_q.shape[-1:]),
           _head(start.shape[-1:]), _head(count.shape[-1:])]
  if causal:
    ops += [q_pos, kv_pos]
    specs += [_head((tq,)), _tile(block_k)]
  ops = pallas_support.match_varying(*ops)
  dk, dv = pl.pallas_call(
      functools.partial(_dkv_kernel, block_q=block_q, **params),
      grid=(b, h, nk), in_specs=specs,
      out_specs=[_tile(block_k, d), _tile(block_k, d)],
      out_shape=[pallas_support.out_struct(k.shape, k.dtype, ops[0]),
                 pallas_support.out_struct(v.shape, v.dtype, ops[0])],
      compiler_params=_compiler_params(), interpret=interpret,
      name="block_sparse_dkv_gpu")(*ops)
  return dq, dk, dv
