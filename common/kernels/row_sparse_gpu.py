"""Pallas GPU (Triton lowering) bodies of row-sparse attention: forward, dq and dk/dv.

Every query has its own key list, so there are no shared tiles to feed tensor
cores in the forward: a program takes `block_q` queries and loops over the K
list slots, gathering one key/value row per query per slot (`k_ref[rows, :]`,
a pointer gather) and keeping flash-softmax statistics per query. The work is
O(Tq * K * D) and memory-bound, like the XLA path, but without materialising
the gathered [Tq, K, D] tensors in HBM.

dk/dv: programs own `block_k` keys and walk the (query, key) pairs sorted by
key (`sparse_indices.pairs_by_key`) that fall in their keys, `chunk` pairs at
a time. A pair's key row is selected from the program's key tile with a
one-hot [chunk, block_k] matmul, and the per-pair gradients are reduced into
the tile with its transpose, so accumulation is deterministic (no atomics).

Shapes are padded by the caller (row_sparse_attention) to multiples of the
tiles, and K to a power of two; all tiles are powers of two.

GQA: k/v BlockSpecs map query head h to kv head h // G; the dk/dv programs
run per query head and return f32 [B, H, Tk, D] when G > 1, which the caller
sums over each group (gpu_support.sum_groups). Segment ids never reach these
bodies: row_sparse_attention drops cross-segment keys from the lists.
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
from common.kernels.pallas_support import NN, TN, dot

_COMPILER_PARAMS = gpu_support.compiler_params(num_stages=1)


def _slot(rows_ref, j, k_ref, v_ref, q, scale):
  """Scores and values of list slot j for every query of the tile."""
  col = rows_ref[:, j]
  valid = col >= 0
  safe = jnp.maximum(col, 0)
  kc = k_ref[safe, :].astype(jnp.float32)
  vc = v_ref[safe, :]
  s = jnp.sum(q * kc, axis=1) * scale
  return valid, kc, vc, s


def _fwd_kernel(q_ref, k_ref, v_ref, rows_ref, o_ref, lse_ref, *, scale):
  q = q_ref[...].astype(jnp.float32)

  def body(j, carry):
    valid, _, vc, s = _slot(rows_ref, j, k_ref, v_ref, q, scale)
    m, l, acc = carry
    m_new = jnp.maximum(m, jnp.where(valid, s, attention_math.MASK_VALUE))
    p = jnp.where(valid, jnp.exp(s - m_new), 0.0)
    alpha = jnp.exp(m - m_new)
    acc = alpha[:, None] * acc + p[:, None] * vc.astype(jnp.float32)
    return m_new, alpha * l + p, acc

  bq, d = q.shape
  init = (jnp.full((bq,), attention_math.MASK_VALUE, jnp.float32),
          jnp.zeros((bq,), jnp.float32), jnp.zeros((bq, d), jnp.float32))
  m, l, acc = lax.fori_loop(0, rows_ref.shape[1], body, init)
  o, lse = attention_math.finalize(m, l, acc)
  o_ref[...] = o.astype(o_ref.dtype)
  lse_ref[...] = lse


def _dq_kernel(q_ref, k_ref, v_ref, rows_ref, do_ref, lse_ref, delta_ref,
               dq_ref, *, scale):
  q = q_ref[...].astype(jnp.float32)
  do = do_ref[...].astype(jnp.float32)
  lse, delta = lse_ref[...], delta_ref[...]

  def body(j, dq):
    valid, kc, vc, s = _slot(rows_ref, j, k_ref, v_ref, q, scale)
    p = jnp.where(valid, jnp.exp(s - lse), 0.0)
    ds = p * (jnp.sum(do * vc.astype(jnp.float32), axis=1) - delta)
    return dq + ds[:, None] * kc

  dq = lax.fori_loop(0, rows_ref.shape[1], body,
                     jnp.zeros(q.shape, jnp.float32))
  dq_ref[...] = (dq * scale).astype(dq_ref.dtype)


def _dkv_kernel(q_ref, do_ref, lse_ref, delta_ref, k_ref, v_ref, pair_q_ref,
                pair_key_ref, start_ref, count_ref, dk_ref, dv_ref, *, scale,
                block_k, chunk):
  kb = pl.program_id(2)
  k = k_ref[...].astype(jnp.float32)
  v = v_ref[...].astype(jnp.float32)
  begin, n = start_ref[kb], count_ref[kb]
  lane = lax.broadcasted_iota(jnp.int32, (chunk,), 0)
  key_col = lax.broadcasted_iota(jnp.int32, (chunk, block_k), 1)

  def body(c, carry):
    dk, dv = carry
    off = begin + c * chunk
    live = off + lane < begin + n
    pq = jnp.where(live, pair_q_ref[pl.ds(off, chunk)], 0)
    local = pair_key_ref[pl.ds(off, chunk)] - kb * block_k
    onehot = ((local[:, None] == key_col) & live[:, None]).astype(jnp.float32)
    qg = q_ref[pq, :].astype(jnp.float32)
    dog = do_ref[pq, :].astype(jnp.float32)
    s = jnp.sum(qg * dot(onehot, k, NN), axis=1) * scale
    p = jnp.where(live, jnp.exp(s - lse_ref[pq]), 0.0)
    dp = jnp.sum(dog * dot(onehot, v, NN), axis=1)
    ds = p * (dp - delta_ref[pq])
    return (dk + dot(onehot, ds[:, None] * qg, TN),
            dv + dot(onehot, p[:, None] * dog, TN))

  zeros = jnp.zeros(k.shape, jnp.float32)
  dk, dv = lax.fori_loop(0, pl.cdiv(n, chunk), body, (zeros, zeros))
  dk_ref[...] = (dk * scale).astype(dk_ref.dtype)
  dv_ref[...] = dv.astype(dv_ref.dtype)


def forward(q, k, v, rows, *, block_q, scale, interpret):
  """Returns (o, lse internal); Tq % block_q == 0, K a power of two."""
  b, h, tq, d = q.shape
  tk, kk = k.shape[2], rows.shape[-1]
  group = h // k.shape[1]
  ops = pallas_support.match_varying(q, k, v, rows)
  return pl.pallas_call(
      functools.partial(_fwd_kernel, scale=scale),
      grid=(b, h, tq // block_q),
      in_specs=[tile(block_q, d), head((tk, d), group), head((tk, d), group),
                tile(block_q, kk)],
      out_specs=[tile(block_q, d), tile(block_q)],
      out_shape=[pallas_support.out_struct(q.shape, q.dtype, ops[0]),
                 pallas_support.out_struct((b, h, tq), jnp.float32, ops[0])],
      compiler_params=_COMPILER_PARAMS, interpret=interpret,
      name="row_sparse_fwd_gpu")(*ops)


def backward(q, k, v, rows, lse, do, delta, *, block_q, block_k, chunk, scale,
             interpret):
  """Returns (dq, dk, dv); Tq % block_q == 0 and Tk % block_k == 0.

  With GQA dk/dv are per query head (f32 [B, H, Tk, D]; gpu_support.sum_groups).
  """
  b, h, tq, d = q.shape
  tk, kk = k.shape[2], rows.shape[-1]
  group = h // k.shape[1]
  ops = pallas_support.match_varying(q, k, v, rows, do, lse, delta)
  dq = pl.pallas_call(
      functools.partial(_dq_kernel, scale=scale),
      grid=(b, h, tq // block_q),
      in_specs=[tile(block_q, d), head((tk, d), group), head((tk, d), group),
                tile(block_q, kk), tile(block_q, d), tile(block_q),
                tile(block_q)],
      out_specs=tile(block_q, d),
      out_shape=pallas_support.out_struct(q.shape, q.dtype, ops[0]),
      compiler_params=_COMPILER_PARAMS, interpret=interpret,
      name="row_sparse_dq_gpu")(*ops)

  nkb = tk // block_k
  pair_q, pair_key = sparse_indices.pairs_by_key(rows, tk)
  start, count = sparse_indices.run_starts(pair_key, nkb, run_width=block_k)
  # Chunks may read up to `chunk` pairs past a run's end: pad so they exist.
  pad = [(0, 0), (0, 0), (0, chunk)]
  pair_q = pad_pow2(jnp.pad(pair_q, pad, constant_values=-1))
  pair_key = pad_pow2(jnp.pad(pair_key, pad, constant_values=tk), tk)
  start, count = pad_pow2(start, 0), pad_pow2(count, 0)
  dk, dv = gpu_support.dkv_call(
      functools.partial(_dkv_kernel, scale=scale, block_k=block_k,
                        chunk=chunk),
      (q, do, lse, delta, k, v, pair_q, pair_key, start, count),
      [head((tq, d)), head((tq, d)), head((tq,)), head((tq,)),
       tile(block_k, d, group=group), tile(block_k, d, group=group),
       head(pair_q.shape[-1:]), head(pair_key.shape[-1:]),
       head(start.shape[-1:]), head(count.shape[-1:])],
      q=q, k=k, v=v, block_k=block_k, compiler_params=_COMPILER_PARAMS,
      interpret=interpret, name="row_sparse_dkv_gpu")
  return dq, dk, dv
