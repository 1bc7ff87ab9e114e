"""Pallas TPU (Mosaic) bodies of block-sparse attention: forward, dq and dk/dv.

Scheme (as in JAX's splash attention): the block lists are scalar-prefetched
into SMEM and the BlockSpec index maps read them, so the pipeline DMAs exactly
the selected K/V blocks. An empty slot (-1) maps to the block fetched by the
previous grid step (`sparse_indices.forward_fill`), for which the pipeline
issues no copy, and the body skips its compute with pl.when.

* forward / dq: grid (B, H, nQ, n_sel); the last axis walks a query block's
  slots, accumulating in VMEM scratch; the output block is written at the last
  slot.
* dk/dv: grid (B, H, P) over (q block, kv block) pairs sorted by kv block
  (`sparse_indices.pairs_by_kv_block` with one empty pair per kv block), so
  each kv block's pairs are consecutive grid steps: its dk/dv accumulate in
  scratch and are written when the kv block changes. P = nQ * n_sel + nK,
  i.e. the same work as the forward, with no padded inverse map.

Optional per-element row masks (`rows`, [B, H, Tq, K] key lists) let
row-sparse attention reuse these bodies on the blocks its keys touch.

Layouts chosen for Mosaic tiling: positions are passed as [B, H, Tq, 1] and
[B, H, 1, Tk] so the causal compare is a (bq, 1) x (1, bk) broadcast; lse and
delta as [B, H, Tq, 1]. Real-TPU constraints (checked by the op): block_q a
multiple of 8, block_k a multiple of 128 (lanes of the kv position block).
SMEM holds B * H * nQ * n_sel int32 per prefetched list, which bounds the
problem size per call (shard over batch/heads beyond ~100k slots).
"""
from __future__ import annotations

import functools

import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from common.kernels import attention_math
from common.kernels import pallas_support
from common.kernels import sparse_indices
from common.kernels.pallas_support import NN, NT, TN, dot


def _tile_mask(qpos_ref, kvpos_ref, rows_ref, blk, block_k, shape):
  """Admissible (query, key) pairs of the current tile, or None if all are."""
  mask = None
  if qpos_ref is not None:
    mask = qpos_ref[...] >= kvpos_ref[...]  # (bq, 1) >= (1, bk)
  if rows_ref is not None:
    cols = blk * block_k + lax.broadcasted_iota(jnp.int32, (1, shape[1]), 1)
    rows = rows_ref[...]
    # Unrolled over the K listed keys: static lane slices lower well on Mosaic.
    hit = rows[:, 0:1] == cols
    for j in range(1, rows.shape[1]):
      hit = hit | (rows[:, j:j + 1] == cols)
    mask = hit if mask is None else mask & hit
  return mask


def _unpack_inputs(refs, causal, has_rows, n_tail=None):
  """Splits kernel refs laid out as q, k, v, [q_pos, kv_pos], [rows], *tail."""
  it = iter(refs)
  q_ref, k_ref, v_ref = next(it), next(it), next(it)
  qpos_ref = next(it) if causal else None
  kvpos_ref = next(it) if causal else None
  rows_ref = next(it) if has_rows else None
  tail = list(it)
  assert n_tail is None or len(tail) == n_tail, (len(tail), n_tail)
  return q_ref, k_ref, v_ref, qpos_ref, kvpos_ref, rows_ref, tail


def _slot_index(b, hh, i, j, *, h, nq, n_sel):
  """Position of slot j of query block i of (b, hh) in the flattened block lists."""
  return ((b * h + hh) * nq + i) * n_sel + j


def _slot_program(idx_ref, fetch_ref, refs, *, h, nq, n_sel, causal, has_rows):
  """A (B, H, nQ, n_sel)-grid program's slot j, the kv block it reads (-1: none), then its refs:
  q, k, v, qpos, kvpos, rows (None where absent), and the output and scratch refs after them."""
  del fetch_ref  # Only read by the index maps.
  *inputs, tail = _unpack_inputs(refs, causal, has_rows)
  b, hh, i, j = (pl.program_id(a) for a in range(4))
  return (j, idx_ref[_slot_index(b, hh, i, j, h=h, nq=nq, n_sel=n_sel)], *inputs, *tail)


def _fwd_kernel(idx_ref, fetch_ref, *refs, n_sel, block_k, scale, **grid):
  (j, blk, q_ref, k_ref, v_ref, qpos_ref, kvpos_ref, rows_ref, o_ref, lse_ref, m_scr, l_scr,
   acc_scr) = _slot_program(idx_ref, fetch_ref, refs, n_sel=n_sel, **grid)

  @pl.when(j == 0)
  def _init():
    m_scr[...] = jnp.full(m_scr.shape, attention_math.MASK_VALUE, jnp.float32)
    l_scr[...] = jnp.zeros(l_scr.shape, jnp.float32)
    acc_scr[...] = jnp.zeros(acc_scr.shape, jnp.float32)

  @pl.when(blk >= 0)
  def _step():
    s = dot(q_ref[...], k_ref[...], NT) * scale
    mask = _tile_mask(qpos_ref, kvpos_ref, rows_ref, blk, block_k, s.shape)
    m, l, acc = attention_math.online_softmax_update(
        m_scr[...], l_scr[...], acc_scr[...], s, mask, v_ref[...],
        lambda p, v: dot(p, v, NN))
    m_scr[...], l_scr[...], acc_scr[...] = m, l, acc

  @pl.when(j == n_sel - 1)
  def _done():
    o, lse = attention_math.finalize(m_scr[...], l_scr[...], acc_scr[...])
    o_ref[...] = o.astype(o_ref.dtype)
    lse_ref[...] = lse


def _probs_and_dscores(q, k, v, do, lse, delta, mask, scale):
  """Recomputed probabilities p and score gradients ds of one tile (FA2)."""
  s = dot(q, k, NT) * scale
  p = jnp.exp(s - lse)  # lse = +inf on empty rows makes p exactly 0.
  if mask is not None:
    p = jnp.where(mask, p, 0.0)
  ds = p * (dot(do, v, NT) - delta)
  return p, ds


def _dq_kernel(idx_ref, fetch_ref, *refs, n_sel, block_k, scale, **grid):
  (j, blk, q_ref, k_ref, v_ref, qpos_ref, kvpos_ref, rows_ref, do_ref, lse_ref, delta_ref,
   dq_ref, dq_scr) = _slot_program(idx_ref, fetch_ref, refs, n_sel=n_sel, **grid)

  @pl.when(j == 0)
  def _init():
    dq_scr[...] = jnp.zeros(dq_scr.shape, jnp.float32)

  @pl.when(blk >= 0)
  def _step():
    k = k_ref[...]
    mask = _tile_mask(qpos_ref, kvpos_ref, rows_ref, blk, block_k,
                      (q_ref.shape[0], k.shape[0]))
    _, ds = _probs_and_dscores(q_ref[...], k, v_ref[...], do_ref[...],
                               lse_ref[...], delta_ref[...], mask, scale)
    dq_scr[...] += dot(ds.astype(k.dtype), k, NN) * scale

  @pl.when(j == n_sel - 1)
  def _done():
    dq_ref[...] = dq_scr[...].astype(dq_ref.dtype)


def _dkv_kernel(pq_ref, pqf_ref, pkf_ref, *refs, h, n_pairs, causal, has_rows,
                block_k, scale):
  del pqf_ref
  q_ref, k_ref, v_ref, qpos_ref, kvpos_ref, rows_ref, tail = _unpack_inputs(
      refs, causal, has_rows, 7)
  do_ref, lse_ref, delta_ref, dk_ref, dv_ref, dk_scr, dv_scr = tail
  b, hh, t = (pl.program_id(a) for a in range(3))
  base = (b * h + hh) * n_pairs
  kb = pkf_ref[base + t]
  # Pairs are sorted by kv block, so a kv block's pairs are consecutive steps.
  first = (t == 0) | (pkf_ref[base + jnp.maximum(t - 1, 0)] != kb)
  last = (t == n_pairs - 1) | (
      pkf_ref[base + jnp.minimum(t + 1, n_pairs - 1)] != kb)

  @pl.when(first)
  def _init():
    dk_scr[...] = jnp.zeros(dk_scr.shape, jnp.float32)
    dv_scr[...] = jnp.zeros(dv_scr.shape, jnp.float32)

  @pl.when(pq_ref[base + t] >= 0)
  def _step():
    q, do = q_ref[...], do_ref[...]
    mask = _tile_mask(qpos_ref, kvpos_ref, rows_ref, kb, block_k,
                      (q.shape[0], k_ref.shape[0]))
    p, ds = _probs_and_dscores(q, k_ref[...], v_ref[...], do, lse_ref[...],
                               delta_ref[...], mask, scale)
    dv_scr[...] += dot(p.astype(do.dtype), do, TN)
    dk_scr[...] += dot(ds.astype(q.dtype), q, TN) * scale

  @pl.when(last)
  def _done():
    dk_ref[...] = dk_scr[...].astype(dk_ref.dtype)
    dv_ref[...] = dv_scr[...].astype(dv_ref.dtype)


def _compiler_params(n_parallel, n_arbitrary):
  return pltpu.CompilerParams(
      dimension_semantics=("parallel",) * n_parallel + ("arbitrary",) * n_arbitrary)


def _inputs(q, k, v, q_pos, kv_pos, rows, tail, *, q_map, kv_map, kvpos_map,
            block_q, block_k, causal):
  """Operands and BlockSpecs in kernel order: q, k, v, [positions], [rows], *tail.

  `tail` holds per-query [B, H, Tq, c] arrays (do, lse, delta) that follow
  the query block.
  """
  d = q.shape[-1]
  ops = [q, k, v]
  specs = [pl.BlockSpec((None, None, block_q, d), q_map),
           pl.BlockSpec((None, None, block_k, d), kv_map),
           pl.BlockSpec((None, None, block_k, d), kv_map)]
  if causal:
    b, h, tq = q_pos.shape
    ops += [q_pos.reshape(b, h, tq, 1), kv_pos.reshape(b, h, 1, -1)]
    specs += [pl.BlockSpec((None, None, block_q, 1), q_map),
              pl.BlockSpec((None, None, 1, block_k), kvpos_map)]
  if rows is not None:
    ops.append(rows)
    specs.append(pl.BlockSpec((None, None, block_q, rows.shape[-1]), q_map))
  for x in tail:
    ops.append(x)
    specs.append(pl.BlockSpec((None, None, block_q, x.shape[-1]), q_map))
  return ops, specs


def _slot_maps(h, nq, n_sel):
  """Index maps for the (B, H, nQ, n_sel) grid with prefetched (idx, fetch)."""

  slot = functools.partial(_slot_index, h=h, nq=nq, n_sel=n_sel)

  def q_map(bi, hi, i, j, idx_ref, fetch_ref):
    del j, idx_ref, fetch_ref
    return (bi, hi, i, 0)

  def kv_map(bi, hi, i, j, idx_ref, fetch_ref):
    del idx_ref
    return (bi, hi, fetch_ref[slot(bi, hi, i, j)], 0)

  def kvpos_map(bi, hi, i, j, idx_ref, fetch_ref):
    del idx_ref
    return (bi, hi, 0, fetch_ref[slot(bi, hi, i, j)])

  return dict(q_map=q_map, kv_map=kv_map, kvpos_map=kvpos_map)


def _pair_maps(h, n_pairs):
  """Index maps for the (B, H, P) grid with prefetched (pair_q, q fetch, kv fetch)."""

  def q_map(bi, hi, t, pq_ref, pqf_ref, pkf_ref):
    del pq_ref, pkf_ref
    return (bi, hi, pqf_ref[(bi * h + hi) * n_pairs + t], 0)

  def kv_map(bi, hi, t, pq_ref, pqf_ref, pkf_ref):
    del pq_ref, pqf_ref
    return (bi, hi, pkf_ref[(bi * h + hi) * n_pairs + t], 0)

  def kvpos_map(bi, hi, t, pq_ref, pqf_ref, pkf_ref):
    del pq_ref, pqf_ref
    return (bi, hi, 0, pkf_ref[(bi * h + hi) * n_pairs + t])

  return dict(q_map=q_map, kv_map=kv_map, kvpos_map=kvpos_map)


def forward(q, k, v, idx, q_pos, kv_pos, rows, *, block_q, block_k, causal,
            scale, interpret):
  """Returns (o, lse [B, H, Tq] internal).

  Args:
    idx: [B, H, nQ, n_sel] compacted block lists.
    q_pos, kv_pos: [B, H, T] int32 positions (None unless causal).
    rows: None, or [B, H, Tq, K] compacted key lists masking inside tiles.
  """
  fn = functools.partial(_forward_impl, block_q=block_q, block_k=block_k,
                         causal=causal, scale=scale, interpret=interpret)
  return pallas_support.fold_vmap_into_batch(fn)(q, k, v, idx, q_pos, kv_pos,
                                                 rows)


def backward(q, k, v, idx, q_pos, kv_pos, rows, lse, do, delta, *, block_q,
             block_k, causal, scale, interpret):
  """Returns (dq, dk, dv) in the input dtypes; lse internal, delta from attention_math."""
  fn = functools.partial(_backward_impl, block_q=block_q, block_k=block_k,
                         causal=causal, scale=scale, interpret=interpret)
  return pallas_support.fold_vmap_into_batch(fn)(q, k, v, idx, q_pos, kv_pos,
                                                 rows, lse, do, delta)


def _forward_impl(q, k, v, idx, q_pos, kv_pos, rows, *, block_q, block_k,
                  causal, scale, interpret):
  b, h, tq, d = q.shape
  nq, n_sel = idx.shape[2], idx.shape[3]
  fetch = sparse_indices.forward_fill(idx.reshape(b, h, nq * n_sel))
  maps = _slot_maps(h, nq, n_sel)
  ops, specs = _inputs(q, k, v, q_pos, kv_pos, rows, (), block_q=block_q,
                       block_k=block_k, causal=causal, **maps)
  ops = pallas_support.match_varying(idx.reshape(-1), fetch.reshape(-1), *ops)
  kernel = functools.partial(
      _fwd_kernel, h=h, nq=nq, n_sel=n_sel, causal=causal,
      has_rows=rows is not None, block_k=block_k, scale=scale)
  grid_spec = pltpu.PrefetchScalarGridSpec(
      num_scalar_prefetch=2, grid=(b, h, nq, n_sel), in_specs=specs,
      out_specs=[pl.BlockSpec((None, None, block_q, d), maps["q_map"]),
                 pl.BlockSpec((None, None, block_q, 1), maps["q_map"])],
      scratch_shapes=[pltpu.VMEM((block_q, 1), jnp.float32),
                      pltpu.VMEM((block_q, 1), jnp.float32),
                      pltpu.VMEM((block_q, d), jnp.float32)])
  like = ops[2]
  o, lse = pl.pallas_call(
      kernel, grid_spec=grid_spec,
      out_shape=[pallas_support.out_struct(q.shape, q.dtype, like),
                 pallas_support.out_struct((b, h, tq, 1), jnp.float32, like)],
      compiler_params=_compiler_params(3, 1), interpret=interpret,
      name="block_sparse_fwd_tpu")(*ops)
  return o, lse[..., 0]


def _backward_impl(q, k, v, idx, q_pos, kv_pos, rows, lse, do, delta, *,
                   block_q, block_k, causal, scale, interpret):
  b, h, _, d = q.shape
  nq, n_sel = idx.shape[2], idx.shape[3]
  nk = k.shape[2] // block_k
  tail = (do, lse[..., None], delta[..., None])
  cfg = dict(block_q=block_q, block_k=block_k, causal=causal)
  params = dict(causal=causal, has_rows=rows is not None, block_k=block_k,
                scale=scale)

  # dq: the forward's grid and index maps.
  fetch = sparse_indices.forward_fill(idx.reshape(b, h, nq * n_sel))
  maps = _slot_maps(h, nq, n_sel)
  ops, specs = _inputs(q, k, v, q_pos, kv_pos, rows, tail, **cfg, **maps)
  ops = pallas_support.match_varying(idx.reshape(-1), fetch.reshape(-1), *ops)
  dq = pl.pallas_call(
      functools.partial(_dq_kernel, h=h, nq=nq, n_sel=n_sel, **params),
      grid_spec=pltpu.PrefetchScalarGridSpec(
          num_scalar_prefetch=2, grid=(b, h, nq, n_sel), in_specs=specs,
          out_specs=pl.BlockSpec((None, None, block_q, d), maps["q_map"]),
          scratch_shapes=[pltpu.VMEM((block_q, d), jnp.float32)]),
      out_shape=pallas_support.out_struct(q.shape, q.dtype, ops[2]),
      compiler_params=_compiler_params(3, 1), interpret=interpret,
      name="block_sparse_dq_tpu")(*ops)

  # dk/dv: one grid step per (q block, kv block) pair, sorted by kv block.
  pair_q, pair_kv = sparse_indices.pairs_by_kv_block(idx, nk,
                                                     one_per_kv_block=True)
  n_pairs = pair_q.shape[-1]
  pair_q_fetch = sparse_indices.forward_fill(pair_q)
  pair_kv_fetch = jnp.minimum(pair_kv, nk - 1)
  maps = _pair_maps(h, n_pairs)
  ops, specs = _inputs(q, k, v, q_pos, kv_pos, rows, tail, **cfg, **maps)
  ops = pallas_support.match_varying(pair_q.reshape(-1),
                                     pair_q_fetch.reshape(-1),
                                     pair_kv_fetch.reshape(-1), *ops)
  like = ops[3]
  dk, dv = pl.pallas_call(
      functools.partial(_dkv_kernel, h=h, n_pairs=n_pairs, **params),
      grid_spec=pltpu.PrefetchScalarGridSpec(
          num_scalar_prefetch=3, grid=(b, h, n_pairs), in_specs=specs,
          out_specs=[pl.BlockSpec((None, None, block_k, d), maps["kv_map"]),
                     pl.BlockSpec((None, None, block_k, d), maps["kv_map"])],
          scratch_shapes=[pltpu.VMEM((block_k, d), jnp.float32),
                          pltpu.VMEM((block_k, d), jnp.float32)]),
      out_shape=[pallas_support.out_struct(k.shape, k.dtype, like),
                 pallas_support.out_struct(v.shape, v.dtype, like)],
      compiler_params=_compiler_params(2, 1), interpret=interpret,
      name="block_sparse_dkv_tpu")(*ops)
  return dq, dk, dv
