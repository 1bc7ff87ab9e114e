"""Gather-based XLA path of block-sparse attention (CPU, and shapes the kernels do not take).

For every query block the selected key/value blocks are gathered into
[B, H, nQ, n_sel * block_k, D] and attended to densely, so the largest score
array is [B, H, nQ, block_q, n_sel * block_k]: O(Tq * n_sel * block_k), never
Tq x Tk. A lax.scan over chunks of query blocks keeps even that bounded by
`CHUNK_BYTES`. The backward recomputes scores from the saved lse (as the
kernels do) and scatter-adds the gathered-block gradients into dk/dv, carried
through the scan as f32 [B, H_kv, Tk, D] accumulators.

GQA: kv blocks are gathered by kv head (query head h reads h // G), so k and v
are never repeated, and the dk/dv scatter-add sums the G query heads of a
group directly into the kv head's accumulator. Segment ids and kv positions
are gathered with the same block indices. The Shaw terms
(relative_positions.py) go through [B, H, c, block_q, R] per chunk: q . rel_keys
gathered by bucket, probabilities summed into buckets; the tables' gradients
are carried through the scan as f32 [Ht, R, D]. With `diagonal` (default
positions) the same terms go through each tile's diagonals instead
(relative_positions.Diagonals, skew / unskew): no per-element gather or
scatter-add, which dominated the relative layers' time on CPU. With `window` (a causal
local window on default positions: relative_positions.Window) a query block's slots are
consecutive kv blocks in order, so the scores' [bq, n_sel * bk] layout is one window and the
terms go through one skew of its diagonals.

Inputs are the op's prepared values: `idx` compacted (sparse_indices), lse in
the internal convention (attention_math), `ext` an extras.Extras.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from common.kernels import attention_math
from common.kernels import block_size as block_size_lib
from common.kernels import pallas_support
from common.kernels import relative_positions as rel

# Working-set target per scan step: chunks small enough to stay in cache, large enough that the
# scan's steps are few. 16 MB against the earlier 64 MB, on the routing layer of
# benchmarks/long_context.py at n = 4096 (2 routing + 2 local heads of 64, AMD EPYC with 2 MB of
# L2 a core; both trees alternated twice): forward 83 -> 50 ms with the Shaw terms, 46 -> 29 ms
# without; forward+backward 257 -> 182 and 125 -> 113 ms; at 16k forward+backward 1,071 -> 926 ms
# with them.
CHUNK_BYTES = 16 * 2**20


def _chunk_count(q, idx, block_q, block_k, ext):
  b, h, tq, d = q.shape
  n_sel = idx.shape[-1]
  per_block = b * h * (block_q * n_sel * block_k * 4 * 4 +
                       2 * n_sel * block_k * d * q.dtype.itemsize)
  if ext.relative:
    per_block += b * h * block_q * (2 * ext.max_distance + 1) * 4 * 3
  return block_size_lib.choose_num_chunks(tq // block_q, per_block, CHUNK_BYTES)


def _split(x, n_chunks, inner_shape):
  """[B, H, nQ*..., ...] -> [n_chunks, B, H, nQ/n_chunks, *inner_shape]."""
  if x is None:
    return None
  b, h = x.shape[:2]
  x = x.reshape((b, h, n_chunks, -1) + inner_shape)
  return jnp.moveaxis(x, 2, 0)


def _merge(x):
  """Inverse of _split for an output chunk stack [n_chunks, B, H, c, ...]."""
  x = jnp.moveaxis(x, 0, 2)
  return x.reshape(x.shape[:2] + (-1,) + x.shape[5:])


def _gather_blocks(x_blocks, idx):
  """x_blocks [B, Hx, nK, bk, ...] at idx [B, H, c, n_sel] -> [B, H, c, n_sel, bk, ...].

  Query head h reads head h // (H // Hx) of x (Hx = H_kv for k/v, 1 for segment ids).
  """
  b, h = idx.shape[:2]
  bi = jnp.arange(b)[:, None, None, None]
  hi = (jnp.arange(h) // (h // x_blocks.shape[1]))[None, :, None, None]
  return x_blocks[bi, hi, jnp.maximum(idx, 0)]


class _Blocks:
  """The key side split into kv blocks: k, v [B, H_kv, nK, bk, D], kv positions [B, H, nK, bk]
  and kv segment ids [B, 1, nK, bk] (None when absent)."""

  def __init__(self, k, v, kv_pos, ext, block_k):
    b, hk, tk, d = k.shape
    nk = tk // block_k
    self.k = k.reshape(b, hk, nk, block_k, d)
    self.v = v.reshape(b, hk, nk, block_k, d)
    self.pos = (None if kv_pos is None else
                kv_pos.reshape(kv_pos.shape[:2] + (nk, block_k)))
    self.seg = (None if not ext.segments else
                ext.kv_segment_ids.reshape(b, 1, nk, block_k))


def _query_side(q, idx, q_pos, ext, n_chunks, block_q):
  """Per-chunk inputs: q, idx, q positions, q segment ids ([n_chunks, B, H or 1, c, ...])."""
  d = q.shape[-1]
  qseg = ext.q_segment_ids[:, None] if ext.segments else None
  return (_split(q, n_chunks, (block_q, d)),
          _split(idx, n_chunks, (idx.shape[-1],)),
          _split(q_pos, n_chunks, (block_q,)),
          _split(qseg, n_chunks, (block_q,)))


def _chunk_scores(q_c, idx_c, qpos_c, qseg_c, blocks, ext, *, causal, scale,
                  diagonal, window, block_q, block_k):
  """One chunk: gathered k/v blocks, f32 scores [B, H, c, bq, n_sel, bk] (with the relative
  key term), their mask, and where the relative terms sit: the flat bucket matrix
  [B, H, c, bq, n_sel * bk], or with `diagonal` a relative_positions.Diagonals (None
  without tables)."""
  kg = _gather_blocks(blocks.k, idx_c)
  vg = _gather_blocks(blocks.v, idx_c)
  s = jnp.einsum("bhcqd,bhcskd->bhcqsk", q_c, kg,
                 preferred_element_type=jnp.float32) * scale
  mask = (idx_c >= 0)[:, :, :, None, :, None]
  kpos = _gather_blocks(blocks.pos, idx_c) if blocks.pos is not None else None
  if causal:
    mask = mask & (qpos_c[..., :, None, None] >= kpos[:, :, :, None, :, :])
  if ext.segments:
    kseg = _gather_blocks(blocks.seg, idx_c)  # [B, H, c, n_sel, bk]
    mask = mask & (qseg_c[..., :, None, None] == kseg[:, :, :, None, :, :])
  where = None
  if ext.relative and window:
    where = rel.Window.of(window, block=block_q, max_distance=ext.max_distance)
  elif ext.relative and diagonal:
    where = rel.Diagonals.of_tiles(qpos_c[..., 0], jnp.maximum(idx_c, 0), block_q=block_q,
                                   block_k=block_k, max_distance=ext.max_distance)
  elif ext.relative:
    where = rel.buckets(qpos_c[..., :, None, None], kpos[:, :, :, None, :, :],
                        ext.max_distance)
    where = _flat(jnp.broadcast_to(where, s.shape))
  if ext.rel_keys is not None:
    s = s + _relative_gather(where, q_c, ext.rel_keys, block_k).reshape(s.shape) * scale
  return kg, vg, s, mask, where


def _tile_layout(x):
  """[B, H, c, n_sel, bq, bk] -> the scores' [B, H, c, bq, n_sel, bk] (and back)."""
  return jnp.swapaxes(x, 3, 4)


def _diagonals_of(x):
  """Scores-layout [B, H, c, bq, n_sel, bk] -> per-tile diagonals [B, H, c, n_sel, bq, U]."""
  return rel.unskew(_tile_layout(x))


def _relative_gather(where, x, table, block_k):
  """The term x_i . table[bucket(i, j)] in the scores' layout (x = q or do)."""
  if isinstance(where, rel.Window):
    return where.skew(where.scores(x, table))
  if isinstance(where, rel.Diagonals):
    return _tile_layout(rel.skew(where.scores(x, table), block_k))
  return rel.gather(rel.table_scores(x, table), where).reshape(where.shape[:4] + (-1,))


def _relative_values(where, w, table):
  """sum_j w_ij table[bucket(i, j)]: f32 [B, H, c, bq, D] (w in the scores' layout)."""
  if isinstance(where, rel.Window):
    return where.values(where.unskew(_flat(w)), table)
  if isinstance(where, rel.Diagonals):
    return jnp.einsum("bhcsqu,bhcsud->bhcqd", _diagonals_of(w.astype(jnp.float32)),
                      where.table_rows(table))
  return rel.table_values(rel.bucket_sums(_flat(w), where, table.shape[1]), table)


def _relative_table_grad(where, w, x, table):
  """d table[r] = sum over (i, j) in bucket r of w_ij x_i: f32 [Ht, R, D]."""
  if isinstance(where, rel.Window):
    return where.table_grad(where.unskew(_flat(w)), x, table.shape[0], table.shape[1])
  if isinstance(where, rel.Diagonals):
    g = jnp.einsum("bhcsqu,bhcqd->bhcsud", _diagonals_of(w.astype(jnp.float32)),
                   x.astype(jnp.float32))
    return where.table_grad(g, table.shape[0])
  return rel.table_grad(rel.bucket_sums(_flat(w), where, table.shape[1]), x, table.shape[0])


def _flat(x):
  """[B, H, c, bq, n_sel, bk] -> [B, H, c, bq, n_sel * bk] (the buckets' layout)."""
  return x.reshape(x.shape[:4] + (-1,))


def forward(q, k, v, idx, q_pos, kv_pos, ext, *, block_q, block_k, causal,
            scale, diagonal=False, window=None):
  """Returns (o [B, H, Tq, D] in q.dtype, lse [B, H, Tq] f32 internal)."""
  blocks = _Blocks(k, v, kv_pos, ext, block_k)
  n_chunks = _chunk_count(q, idx, block_q, block_k, ext)
  xs = _query_side(q, idx, q_pos, ext, n_chunks, block_q)

  def step(_, chunk):
    q_c, idx_c, qpos_c, qseg_c = chunk
    _, vg, s, mask, where = _chunk_scores(
        q_c, idx_c, qpos_c, qseg_c, blocks, ext, causal=causal, scale=scale,
        diagonal=diagonal, window=window, block_q=block_q, block_k=block_k)
    p, lse = attention_math.masked_softmax(s, mask, axes=(-2, -1))
    o = jnp.einsum("bhcqsk,bhcskd->bhcqd", p.astype(v.dtype), vg,
                   preferred_element_type=jnp.float32)
    if ext.rel_values is not None:
      o = o + _relative_values(where, p, ext.rel_values)
    return None, (o.astype(q.dtype), lse)

  _, (o, lse) = jax.lax.scan(step, None, xs)
  return _merge(o), _merge(lse)


def backward(q, k, v, idx, q_pos, kv_pos, ext, lse, do, delta, *, block_q,
             block_k, causal, scale, diagonal=False, window=None):
  """Returns (dq, dk, dv, d rel_keys, d rel_values): dq/dk/dv in the input dtypes, table
  gradients f32 [Ht, R, D] (None without the table)."""
  b, h, _, d = q.shape
  hk, tk = k.shape[1], k.shape[2]
  nk = tk // block_k
  blocks = _Blocks(k, v, kv_pos, ext, block_k)
  n_chunks = _chunk_count(q, idx, block_q, block_k, ext)
  xs = (_query_side(q, idx, q_pos, ext, n_chunks, block_q),
        _split(do, n_chunks, (block_q, d)), _split(lse, n_chunks, (block_q,)),
        _split(delta, n_chunks, (block_q,)))
  bi = jnp.arange(b)[:, None, None, None]
  hi = (jnp.arange(h) // (h // hk))[None, :, None, None]
  rk, rv = ext.rel_keys, ext.rel_values

  def step(carry, chunk):
    dk_acc, dv_acc, drk_acc, drv_acc = carry
    (q_c, idx_c, qpos_c, qseg_c), do_c, lse_c, delta_c = chunk
    kg, vg, s, mask, where = _chunk_scores(
        q_c, idx_c, qpos_c, qseg_c, blocks, ext, causal=causal, scale=scale,
        diagonal=diagonal, window=window, block_q=block_q, block_k=block_k)
    p = jnp.where(mask, jnp.exp(s - lse_c[..., None, None]), 0.0)
    dp = jnp.einsum("bhcqd,bhcskd->bhcqsk", do_c, vg,
                    preferred_element_type=jnp.float32)
    if rv is not None:
      dp = dp + _relative_gather(where, do_c, rv, block_k).reshape(dp.shape)
    ds = p * (dp - delta_c[..., None, None])
    dq = jnp.einsum("bhcqsk,bhcskd->bhcqd", ds.astype(k.dtype), kg,
                    preferred_element_type=jnp.float32) * scale
    if rk is not None:
      dq = dq + _relative_values(where, ds, rk) * scale
      drk_acc = drk_acc + _relative_table_grad(where, ds, q_c, rk) * scale
    if rv is not None:
      drv_acc = drv_acc + _relative_table_grad(where, p, do_c, rv)
    dkg = jnp.einsum("bhcqsk,bhcqd->bhcskd", ds.astype(q.dtype), q_c,
                     preferred_element_type=jnp.float32) * scale
    dvg = jnp.einsum("bhcqsk,bhcqd->bhcskd", p.astype(do.dtype), do_c,
                     preferred_element_type=jnp.float32)
    # Empty slots point at block 0 with all-zero contributions (mask), so the
    # clamped scatter needs no extra filtering; GQA groups add into one kv head.
    safe = jnp.maximum(idx_c, 0)
    dk_acc = dk_acc.at[bi, hi, safe].add(dkg)
    dv_acc = dv_acc.at[bi, hi, safe].add(dvg)
    return (dk_acc, dv_acc, drk_acc, drv_acc), dq.astype(q.dtype)

  like = (q, k, v, do, idx)
  zeros = pallas_support.varying_like(
      jnp.zeros((b, hk, nk, block_k, d), jnp.float32), *like)
  table_zeros = lambda t: (None if t is None else
                           pallas_support.varying_like(jnp.zeros(t.shape, jnp.float32), *like))
  init = (zeros, zeros, table_zeros(rk), table_zeros(rv))
  (dk, dv, drk, drv), dq = jax.lax.scan(step, init, xs)
  return (_merge(dq), dk.reshape(k.shape).astype(k.dtype),
          dv.reshape(v.shape).astype(v.dtype), drk, drv)
