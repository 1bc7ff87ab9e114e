"""Gather-based XLA path of block-sparse attention (CPU, and shapes the kernels do not take).

For every query block the selected key/value blocks are gathered into
[B, H, nQ, n_sel * block_k, D] and attended to densely, so the largest score
array is [B, H, nQ, block_q, n_sel * block_k]: O(Tq * n_sel * block_k), never
Tq x Tk. A lax.scan over chunks of query blocks keeps even that bounded by
`CHUNK_BYTES`. The backward recomputes scores from the saved lse (as the
kernels do) and scatter-adds the gathered-block gradients into dk/dv, carried
through the scan as f32 [B, H, Tk, D] accumulators.

Inputs are the op's prepared values: `idx` compacted (sparse_indices), lse in
the internal convention (attention_math).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from common.kernels import attention_math
from common.kernels import block_size as block_size_lib
from common.kernels import pallas_support

# Working-set target per scan step; a compromise between scan overhead on CPU
# (fewer, larger chunks) and peak memory.
CHUNK_BYTES = 64 * 2**20


def _chunk_count(q, idx, block_q, block_k):
  b, h, tq, d = q.shape
  n_sel = idx.shape[-1]
  per_block = b * h * (block_q * n_sel * block_k * 4 * 4 +
                       2 * n_sel * block_k * d * q.dtype.itemsize)
  return block_size_lib.choose_num_chunks(tq // block_q, per_block, CHUNK_BYTES)


def _split(x, n_chunks, inner_shape):
  """[B, H, nQ*..., ...] -> [n_chunks, B, H, nQ/n_chunks, *inner_shape]."""
  b, h = x.shape[:2]
  x = x.reshape((b, h, n_chunks, -1) + inner_shape)
  return jnp.moveaxis(x, 2, 0)


def _merge(x):
  """Inverse of _split for an output chunk stack [n_chunks, B, H, c, ...]."""
  x = jnp.moveaxis(x, 0, 2)
  return x.reshape(x.shape[:2] + (-1,) + x.shape[5:])


def _gather_blocks(x_blocks, idx):
  """x_blocks [B, H, nK, bk, ...] at idx [B, H, c, n_sel] -> [B, H, c, n_sel, bk, ...]."""
  b, h = idx.shape[:2]
  bi = jnp.arange(b)[:, None, None, None]
  hi = jnp.arange(h)[None, :, None, None]
  return x_blocks[bi, hi, jnp.maximum(idx, 0)]


def _tile_mask(idx_c, qpos_c, kv_pos_blocks, causal):
  """Admissibility [B, H, c, bq, n_sel, bk] (broadcastable)."""
  mask = (idx_c >= 0)[:, :, :, None, :, None]
  if causal:
    kpos = _gather_blocks(kv_pos_blocks, idx_c)  # [B, H, c, n_sel, bk]
    mask = mask & (qpos_c[..., :, None, None] >= kpos[:, :, :, None, :, :])
  return mask


def _kv_blocks(k, v, kv_pos, block_k, causal):
  """k, v [B, H, Tk, D] -> [B, H, nK, bk, D]; kv positions -> [B, H, nK, bk] or None."""
  b, h, tk, d = k.shape
  nk = tk // block_k
  kpb = kv_pos.reshape(b, h, nk, block_k) if causal else None
  return k.reshape(b, h, nk, block_k, d), v.reshape(b, h, nk, block_k, d), kpb


def _chunk_scores(q_c, idx_c, qpos_c, kv_blocks, *, causal, scale):
  """One chunk's gathered k/v blocks, f32 scores [B, H, c, bq, n_sel, bk] and their mask."""
  kb, vb, kpb = kv_blocks
  kg = _gather_blocks(kb, idx_c)
  vg = _gather_blocks(vb, idx_c)
  s = jnp.einsum("bhcqd,bhcskd->bhcqsk", q_c, kg,
                 preferred_element_type=jnp.float32) * scale
  return kg, vg, s, _tile_mask(idx_c, qpos_c, kpb, causal)


def forward(q, k, v, idx, q_pos, kv_pos, *, block_q, block_k, causal, scale):
  """Returns (o [B, H, Tq, D] in q.dtype, lse [B, H, Tq] f32 internal)."""
  d = q.shape[-1]
  kv_blocks = _kv_blocks(k, v, kv_pos, block_k, causal)
  n_chunks = _chunk_count(q, idx, block_q, block_k)
  xs = (_split(q, n_chunks, (block_q, d)), _split(idx, n_chunks, (idx.shape[-1],)),
        _split(q_pos, n_chunks, (block_q,)) if causal else None)

  def step(_, chunk):
    q_c, idx_c, qpos_c = chunk
    _, vg, s, mask = _chunk_scores(q_c, idx_c, qpos_c, kv_blocks, causal=causal,
                                   scale=scale)
    p, lse = attention_math.masked_softmax(s, mask, axes=(-2, -1))
    o = jnp.einsum("bhcqsk,bhcskd->bhcqd", p.astype(v.dtype), vg,
                   preferred_element_type=jnp.float32)
    return None, (o.astype(q.dtype), lse)

  _, (o, lse) = jax.lax.scan(step, None, xs)
  return _merge(o), _merge(lse)


def backward(q, k, v, idx, q_pos, kv_pos, lse, do, delta, *, block_q, block_k,
             causal, scale):
  """Returns (dq, dk, dv) in the input dtypes."""
  b, h, _, d = q.shape
  nk = k.shape[2] // block_k
  kv_blocks = _kv_blocks(k, v, kv_pos, block_k, causal)
  n_chunks = _chunk_count(q, idx, block_q, block_k)
  n_sel = idx.shape[-1]
  xs = (_split(q, n_chunks, (block_q, d)), _split(do, n_chunks, (block_q, d)),
        _split(lse, n_chunks, (block_q,)), _split(delta, n_chunks, (block_q,)),
        _split(idx, n_chunks, (n_sel,)),
        _split(q_pos, n_chunks, (block_q,)) if causal else None)
  bi = jnp.arange(b)[:, None, None, None]
  hi = jnp.arange(h)[None, :, None, None]

  def step(carry, chunk):
    dk_acc, dv_acc = carry
    q_c, do_c, lse_c, delta_c, idx_c, qpos_c = chunk
    kg, vg, s, mask = _chunk_scores(q_c, idx_c, qpos_c, kv_blocks,
                                    causal=causal, scale=scale)
    p = jnp.where(mask, jnp.exp(s - lse_c[..., None, None]), 0.0)
    dp = jnp.einsum("bhcqd,bhcskd->bhcqsk", do_c, vg,
                    preferred_element_type=jnp.float32)
    ds = p * (dp - delta_c[..., None, None])
    dq = jnp.einsum("bhcqsk,bhcskd->bhcqd", ds.astype(k.dtype), kg,
                    preferred_element_type=jnp.float32) * scale
    dkg = jnp.einsum("bhcqsk,bhcqd->bhcskd", ds.astype(q.dtype), q_c,
                     preferred_element_type=jnp.float32) * scale
    dvg = jnp.einsum("bhcqsk,bhcqd->bhcskd", p.astype(do.dtype), do_c,
                     preferred_element_type=jnp.float32)
    # Empty slots point at block 0 with all-zero contributions (mask), so the
    # clamped scatter needs no extra filtering.
    safe = jnp.maximum(idx_c, 0)
    dk_acc = dk_acc.at[bi, hi, safe].add(dkg)
    dv_acc = dv_acc.at[bi, hi, safe].add(dvg)
    return (dk_acc, dv_acc), dq.astype(q.dtype)

  zeros = pallas_support.varying_like(
      jnp.zeros((b, h, nk, block_k, d), jnp.float32), q, k, v, do, idx)
  (dk, dv), dq = jax.lax.scan(step, (zeros, zeros), xs)
  return (_merge(dq), dk.reshape(k.shape).astype(k.dtype),
          dv.reshape(v.shape).astype(v.dtype))
