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

from common.kernels import attention_math
from common.kernels import gpu_support
from common.kernels import pallas_support
from common.kernels import sparse_indices
from common.kernels.gpu_support import head, pad_pow2, tile
from common.kernels.pallas_support import NN, NT, TN, dot

_COMPILER_PARAMS = gpu_support.compiler_params(num_stages=2)


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
    s = dot(q, k_ref[pl.ds(start, block_k), :], NT) * scale
    mask = _causal_mask(qpos, kvpos_ref, start, block_k)
    return attention_math.online_softmax_update(
        *carry, s, mask, v_ref[pl.ds(start, block_k), :],
        lambda p, v: dot(p, v, NN))

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
    p = jnp.exp(dot(q, k, NT) * scale - lse)
    mask = _causal_mask(qpos, kvpos_ref, start, block_k)
    if mask is not None:
      p = jnp.where(mask, p, 0.0)
    ds = p * (dot(do, v_ref[pl.ds(start, block_k), :], NT) - delta)
    return dq + dot(ds.astype(k.dtype), k, NN)

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
    p = jnp.exp(dot(q, k, NT) * scale - lse_ref[rows][:, None])
    if causal:
      p = jnp.where(qpos_ref[rows][:, None] >= kvpos[None, :], p, 0.0)
    ds = p * (dot(do, v, NT) - delta_ref[rows][:, None])
    return (dk + dot(ds.astype(q.dtype), q, TN),
            dv + dot(p.astype(do.dtype), do, TN))

  zeros = jnp.zeros(k.shape, jnp.float32)
  dk, dv = lax.fori_loop(begin, begin + count_ref[kb], body, (zeros, zeros))
  dk_ref[...] = (dk * scale).astype(dk_ref.dtype)
  dv_ref[...] = dv.astype(dv_ref.dtype)


def _query_inputs(q, k, v, idx, q_pos, kv_pos, *, block_q, causal):
  """Operands and BlockSpecs of the (B, H, nQ) grid: q tile, whole-head k/v, the padded
  block list of the query block, [q positions tile, kv positions head]."""
  d, tk = q.shape[-1], k.shape[2]
  idx = pad_pow2(idx)
  ops = [q, k, v, idx]
  specs = [tile(block_q, d), head((tk, d)), head((tk, d)),
           pl.BlockSpec((None, None, None, idx.shape[-1]),
                        lambda bi, hi, i: (bi, hi, i, 0))]
  if causal:
    ops += [q_pos, kv_pos]
    specs += [tile(block_q), head((tk,))]
  return ops, specs


def forward(q, k, v, idx, q_pos, kv_pos, *, block_q, block_k, causal, scale,
            interpret):
  """Returns (o, lse [B, H, Tq] internal). idx: compacted [B, H, nQ, n_sel]."""
  b, h, tq, d = q.shape
  ops, specs = _query_inputs(q, k, v, idx, q_pos, kv_pos, block_q=block_q,
                             causal=causal)
  ops = pallas_support.match_varying(*ops)
  o, lse = pl.pallas_call(
      functools.partial(_fwd_kernel, causal=causal, block_k=block_k,
                        scale=scale),
      grid=(b, h, tq // block_q), in_specs=specs,
      out_specs=[tile(block_q, d), tile(block_q)],
      out_shape=[pallas_support.out_struct(q.shape, q.dtype, ops[0]),
                 pallas_support.out_struct((b, h, tq), jnp.float32, ops[0])],
      compiler_params=_COMPILER_PARAMS, interpret=interpret,
      name="block_sparse_fwd_gpu")(*ops)
  return o, lse


def backward(q, k, v, idx, q_pos, kv_pos, lse, do, delta, *, block_q, block_k,
             causal, scale, interpret):
  """Returns (dq, dk, dv) in the input dtypes."""
  b, h, tq, d = q.shape
  tk = k.shape[2]
  nk = tk // block_k
  params = dict(causal=causal, scale=scale)

  ops, specs = _query_inputs(q, k, v, idx, q_pos, kv_pos, block_q=block_q,
                             causal=causal)
  ops += [do, lse, delta]
  specs += [tile(block_q, d), tile(block_q), tile(block_q)]
  ops = pallas_support.match_varying(*ops)
  dq = pl.pallas_call(
      functools.partial(_dq_kernel, block_k=block_k, **params),
      grid=(b, h, tq // block_q), in_specs=specs,
      out_specs=tile(block_q, d),
      out_shape=pallas_support.out_struct(q.shape, q.dtype, ops[0]),
      compiler_params=_COMPILER_PARAMS, interpret=interpret,
      name="block_sparse_dq_gpu")(*ops)

  pair_q, pair_kv = sparse_indices.pairs_by_kv_block(idx, nk,
                                                     one_per_kv_block=False)
  start, count = sparse_indices.run_starts(pair_kv, nk)
  pair_q, start, count = pad_pow2(pair_q), pad_pow2(start, 0), pad_pow2(count, 0)
  ops = [q, do, lse, delta, k, v, pair_q, start, count]
  specs = [head((tq, d)), head((tq, d)), head((tq,)), head((tq,)),
           tile(block_k, d), tile(block_k, d), head(pair_q.shape[-1:]),
           head(start.shape[-1:]), head(count.shape[-1:])]
  if causal:
    ops += [q_pos, kv_pos]
    specs += [head((tq,)), tile(block_k)]
  dk, dv = gpu_support.dkv_call(
      functools.partial(_dkv_kernel, block_q=block_q, **params), ops, specs,
      k=k, v=v, block_k=block_k, compiler_params=_COMPILER_PARAMS,
      interpret=interpret, name="block_sparse_dkv_gpu")
  return dq, dk, dv
