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

Optional inputs, each loaded per tile by the same index maps:
* row masks (`rows`, [B, H, Tq, K] key lists) let row-sparse attention reuse
  these bodies on the blocks its keys touch;
* segment ids, as [B, Tq, 1] and [B, 1, Tk] tiles (no head axis), folded into
  the tile mask;
* GQA: k and v have H_kv heads and their index maps read kv head h // G. The
  dk/dv body writes per-query-head f32 gradients [B, H, Tk, D] (G > 1), summed
  over each group afterwards;
* Shaw tables (relative_positions.py) as whole [R, D] VMEM blocks per head
  (broadcast to [B, Ht, R, D] so that vmap folding sees a batch axis). Each
  grid step's bucket range is scalar-prefetched (lo, hi per slot / pair), and
  `TileTerms` walks it. The dq body also accumulates the tables' gradients in
  [R, D] output blocks that stay resident over the (query block, slot) axes,
  which are therefore "arbitrary" when tables are present; the result,
  [B, H, R, D] f32, is summed over B (and H for a shared table) afterwards.

Layouts chosen for Mosaic tiling: positions are passed as [B, H, Tq, 1] and
[B, H, 1, Tk] so the causal compare is a (bq, 1) x (1, bk) broadcast; lse and
delta as [B, H, Tq, 1]. Real-TPU constraints (checked by the op): block_q a
multiple of 8, block_k a multiple of 128 (lanes of the kv position / segment
block) whenever positions or segment ids are loaded. SMEM holds
B * H * nQ * n_sel int32 per prefetched list (three times that with tables),
which bounds the problem size per call (shard over batch/heads beyond ~100k
slots).
"""
from __future__ import annotations

import dataclasses
import functools
import types

import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from common.kernels import attention_math
from common.kernels import extras
from common.kernels import pallas_support
from common.kernels import relative_positions as rel
from common.kernels import sparse_indices
from common.kernels.pallas_support import NN, NT, TN, dot


@dataclasses.dataclass(frozen=True)
class _Layout:
  """Which optional operands a call has; fixes the kernels' ref order (see `_operands`)."""
  causal: bool
  positions: bool
  segments: bool
  rows: bool
  rel_k: bool
  rel_v: bool
  group: int  # query heads per kv head
  max_distance: int

  @property
  def relative(self) -> bool:
    return self.rel_k or self.rel_v


def _layout(q, k, rows, ext, causal):
  relative = ext.relative
  return _Layout(causal=causal, positions=causal or relative,
                 segments=ext.segments, rows=rows is not None,
                 rel_k=ext.rel_keys is not None,
                 rel_v=ext.rel_values is not None,
                 group=q.shape[1] // k.shape[1],
                 max_distance=ext.max_distance if relative else 0)


def _unpack(refs, lay, n_prefetch):
  """Kernel refs -> (prefetch refs, named input refs, the remaining refs)."""
  prefetch = refs[:n_prefetch]
  it = iter(refs[n_prefetch:])
  r = types.SimpleNamespace(q=next(it), k=next(it), v=next(it))
  r.qpos, r.kvpos = (next(it), next(it)) if lay.positions else (None, None)
  r.qseg, r.kvseg = (next(it), next(it)) if lay.segments else (None, None)
  r.rows = next(it) if lay.rows else None
  r.rel_k = next(it) if lay.rel_k else None
  r.rel_v = next(it) if lay.rel_v else None
  return prefetch, r, list(it)


def _tile_mask(r, lay, blk, block_k, shape):
  """Admissible (query, key) pairs of the current tile, or None if all are."""
  parts = []
  if lay.causal:
    parts.append(r.qpos[...] >= r.kvpos[...])  # (bq, 1) >= (1, bk)
  if lay.segments:
    parts.append(r.qseg[...] == r.kvseg[...])  # (bq, 1) == (1, bk)
  if lay.rows:
    cols = blk * block_k + lax.broadcasted_iota(jnp.int32, (1, shape[1]), 1)
    rows = r.rows[...]
    # Unrolled over the K listed keys: static lane slices lower well on Mosaic.
    hit = rows[:, 0:1] == cols
    for j in range(1, rows.shape[1]):
      hit = hit | (rows[:, j:j + 1] == cols)
    parts.append(hit)
  mask = None
  for part in parts:
    mask = part if mask is None else mask & part
  return mask


def _tile_terms(r, lay, rng_ref, step, scale):
  """The tile's relative terms (bucket range of grid step `step` from `rng_ref`), or None."""
  if not lay.relative:
    return None

  def row(ref):
    return None if ref is None else (lambda i: ref[pl.ds(i, 1), :])

  bucket = rel.buckets(r.qpos[...], r.kvpos[...], lay.max_distance)
  return rel.TileTerms(bucket, rng_ref[2 * step], rng_ref[2 * step + 1],
                       row(r.rel_k), row(r.rel_v), scale)


def _slot_index(b, hh, i, j, *, h, nq, n_sel):
  """Position of slot j of query block i of (b, hh) in the flattened block lists."""
  return ((b * h + hh) * nq + i) * n_sel + j


def _fwd_kernel(*refs, lay, h, nq, n_sel, block_k, scale):
  prefetch, r, (o_ref, lse_ref, m_scr, l_scr, acc_scr) = _unpack(
      refs, lay, 2 + lay.relative)
  b, hh, i, j = (pl.program_id(a) for a in range(4))
  slot = _slot_index(b, hh, i, j, h=h, nq=nq, n_sel=n_sel)
  blk = prefetch[0][slot]

  @pl.when(j == 0)
  def _init():
    m_scr[...] = jnp.full(m_scr.shape, attention_math.MASK_VALUE, jnp.float32)
    l_scr[...] = jnp.zeros(l_scr.shape, jnp.float32)
    acc_scr[...] = jnp.zeros(acc_scr.shape, jnp.float32)

  @pl.when(blk >= 0)
  def _step():
    q = r.q[...]
    s = dot(q, r.k[...], NT) * scale
    mask = _tile_mask(r, lay, blk, block_k, s.shape)
    terms = _tile_terms(r, lay, prefetch[-1], slot, scale)
    extra = None
    if terms is not None:
      s, _ = terms.scores(s, q)
      if lay.rel_v:
        extra = lambda p: terms.values(p, q.shape[1])
    m, l, acc = attention_math.online_softmax_update(
        m_scr[...], l_scr[...], acc_scr[...], s, mask, r.v[...],
        lambda p, v: dot(p, v, NN), extra=extra)
    m_scr[...], l_scr[...], acc_scr[...] = m, l, acc

  @pl.when(j == n_sel - 1)
  def _done():
    o, lse = attention_math.finalize(m_scr[...], l_scr[...], acc_scr[...])
    o_ref[...] = o.astype(o_ref.dtype)
    lse_ref[...] = lse


def _probs_and_dscores(q, k, v, do, lse, delta, mask, scale, terms):
  """Recomputed probabilities p and score gradients ds of one tile (FA2)."""
  s = dot(q, k, NT) * scale
  dp = dot(do, v, NT)
  if terms is not None:
    s, dp = terms.scores(s, q, dp, do)
  p = jnp.exp(s - lse)  # lse = +inf on empty rows makes p exactly 0.
  if mask is not None:
    p = jnp.where(mask, p, 0.0)
  ds = p * (dp - delta)
  return p, ds


def _dq_kernel(*refs, lay, h, nq, n_sel, block_k, scale):
  prefetch, r, tail = _unpack(refs, lay, 2 + lay.relative)
  do_ref, lse_ref, delta_ref, dq_ref, *tail = tail
  drk_ref = tail.pop(0) if lay.rel_k else None
  drv_ref = tail.pop(0) if lay.rel_v else None
  (dq_scr,) = tail
  b, hh, i, j = (pl.program_id(a) for a in range(4))
  slot = _slot_index(b, hh, i, j, h=h, nq=nq, n_sel=n_sel)
  blk = prefetch[0][slot]

  @pl.when(j == 0)
  def _init():
    dq_scr[...] = jnp.zeros(dq_scr.shape, jnp.float32)

  # Table gradients accumulate over every (query block, slot) of a head.
  @pl.when((i == 0) & (j == 0))
  def _init_tables():
    for ref in (drk_ref, drv_ref):
      if ref is not None:
        ref[...] = jnp.zeros(ref.shape, jnp.float32)

  def add_row(ref):
    def add(i_row, row):
      ref[pl.ds(i_row, 1), :] += row
    return add

  @pl.when(blk >= 0)
  def _step():
    q, k, do = r.q[...], r.k[...], do_ref[...]
    mask = _tile_mask(r, lay, blk, block_k, (q.shape[0], k.shape[0]))
    terms = _tile_terms(r, lay, prefetch[-1], slot, scale)
    p, ds = _probs_and_dscores(q, k, r.v[...], do, lse_ref[...],
                               delta_ref[...], mask, scale, terms)
    dq = dot(ds.astype(k.dtype), k, NN) * scale
    if terms is not None:
      dq = dq + terms.grads(ds, p, q, do,
                            add_row(drk_ref) if lay.rel_k else None,
                            add_row(drv_ref) if lay.rel_v else None)
    dq_scr[...] += dq

  @pl.when(j == n_sel - 1)
  def _done():
    dq_ref[...] = dq_scr[...].astype(dq_ref.dtype)


def _dkv_kernel(*refs, lay, h, n_pairs, block_k, scale):
  prefetch, r, tail = _unpack(refs, lay, 3 + lay.relative)
  pq_ref, _, pkf_ref = prefetch[:3]
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
    q, do = r.q[...], do_ref[...]
    mask = _tile_mask(r, lay, kb, block_k, (q.shape[0], r.k.shape[0]))
    terms = _tile_terms(r, lay, prefetch[-1], base + t, scale)
    p, ds = _probs_and_dscores(q, r.k[...], r.v[...], do, lse_ref[...],
                               delta_ref[...], mask, scale, terms)
    dv_scr[...] += dot(p.astype(do.dtype), do, TN)
    dk_scr[...] += dot(ds.astype(q.dtype), q, TN) * scale

  @pl.when(last)
  def _done():
    dk_ref[...] = dk_scr[...].astype(dk_ref.dtype)
    dv_ref[...] = dv_scr[...].astype(dv_ref.dtype)


def _compiler_params(n_parallel, n_arbitrary):
  return pltpu.CompilerParams(
      dimension_semantics=("parallel",) * n_parallel + ("arbitrary",) * n_arbitrary)


class _Specs:
  """BlockSpecs for one grid: `coords(*grid_ids, *prefetch_refs)` -> (b, h, q block, kv block)."""

  def __init__(self, coords, lay, block_q, block_k, d):
    self.coords, self.lay = coords, lay
    self.block_q, self.block_k, self.d = block_q, block_k, d

  def _spec(self, shape, index):
    return pl.BlockSpec(shape, lambda *a: index(*self.coords(*a)))

  def query(self, width):
    return self._spec((None, None, self.block_q, width),
                      lambda b, h, qb, kb: (b, h, qb, 0))

  def kv(self):
    g = self.lay.group
    # lax.div: truncating (= floor for h >= 0), which Mosaic lowers without a sign op.
    kv_head = (lambda h: h) if g == 1 else (lambda h: lax.div(h, g))
    return self._spec((None, None, self.block_k, self.d),
                      lambda b, h, qb, kb: (b, kv_head(h), kb, 0))

  def kv_out(self):
    return self._spec((None, None, self.block_k, self.d),
                      lambda b, h, qb, kb: (b, h, kb, 0))

  def kv_pos(self):
    return self._spec((None, None, 1, self.block_k),
                      lambda b, h, qb, kb: (b, h, 0, kb))

  def q_seg(self):
    return self._spec((None, self.block_q, 1), lambda b, h, qb, kb: (b, qb, 0))

  def kv_seg(self):
    return self._spec((None, 1, self.block_k), lambda b, h, qb, kb: (b, 0, kb))

  def table(self, t):
    """A [B, Ht, R, D] table: the whole [R, D] of head h (Ht = H) or 0 (Ht = 1)."""
    per_head = t.shape[1] > 1
    return self._spec((None, None) + t.shape[2:],
                      lambda b, h, qb, kb: (b, h if per_head else 0, 0, 0))

  def table_out(self, shape):
    return self._spec((None, None) + tuple(shape),
                      lambda b, h, qb, kb: (b, h, 0, 0))


def _operands(sp, q, k, v, q_pos, kv_pos, rows, qseg, kvseg, rk, rv, tail):
  """Operands and BlockSpecs in kernel order: q, k, v, [positions], [segment ids], [rows],
  [rel_k], [rel_v], *tail (per-query [B, H, Tq, c] arrays that follow the query block)."""
  ops = [q, k, v]
  specs = [sp.query(q.shape[-1]), sp.kv(), sp.kv()]
  if sp.lay.positions:
    b, h, tq = q_pos.shape
    ops += [q_pos.reshape(b, h, tq, 1), kv_pos.reshape(b, h, 1, -1)]
    specs += [sp.query(1), sp.kv_pos()]
  if sp.lay.segments:
    ops += [qseg[:, :, None], kvseg[:, None, :]]
    specs += [sp.q_seg(), sp.kv_seg()]
  if rows is not None:
    ops.append(rows)
    specs.append(sp.query(rows.shape[-1]))
  for t in (rk, rv):
    if t is not None:
      ops.append(t)
      specs.append(sp.table(t))
  for x in tail:
    ops.append(x)
    specs.append(sp.query(x.shape[-1]))
  return ops, specs


def _slot_coords(h, nq, n_sel):
  """(b, h, q block, kv block) of a (B, H, nQ, n_sel)-grid step; prefetch (idx, fetch, ...)."""

  def coords(bi, hi, i, j, idx_ref, fetch_ref, *_):
    del idx_ref
    return bi, hi, i, fetch_ref[_slot_index(bi, hi, i, j, h=h, nq=nq, n_sel=n_sel)]

  return coords


def _pair_coords(h, n_pairs):
  """(b, h, q block, kv block) of a (B, H, P)-grid step; prefetch (pair_q, q fetch, kv fetch, ...)."""

  def coords(bi, hi, t, pq_ref, pqf_ref, pkf_ref, *_):
    del pq_ref
    base = (bi * h + hi) * n_pairs + t
    return bi, hi, pqf_ref[base], pkf_ref[base]

  return coords


def _ranges(lay, q_pos, kv_pos, q_blocks, kv_blocks, block_q, block_k):
  """Flattened (lo, hi) bucket ranges per grid step, or () without tables."""
  if not lay.relative:
    return ()
  lo, hi = rel.block_ranges(q_pos, kv_pos, q_blocks, kv_blocks,
                            block_q=block_q, block_k=block_k,
                            max_distance=lay.max_distance)
  return (jnp.stack([lo, hi], axis=-1).reshape(-1),)


def _slot_ranges(lay, idx, q_pos, kv_pos, block_q, block_k):
  b, h, nq, n_sel = idx.shape
  q_blocks = jnp.broadcast_to(jnp.arange(nq, dtype=jnp.int32)[:, None],
                              (b, h, nq, n_sel)).reshape(b, h, -1)
  return _ranges(lay, q_pos, kv_pos, q_blocks, idx.reshape(b, h, -1), block_q,
                 block_k)


def _batched_tables(ext, b):
  """Tables broadcast to [B, Ht, R, D] (a leading batch axis for vmap folding), or None."""
  return tuple(None if t is None else jnp.broadcast_to(t[None], (b,) + t.shape)
               for t in (ext.rel_keys, ext.rel_values))


def forward(q, k, v, idx, q_pos, kv_pos, rows, ext, *, block_q, block_k, causal,
            scale, interpret):
  """Returns (o, lse [B, H, Tq] internal).

  Args:
    idx: [B, H, nQ, n_sel] compacted block lists.
    q_pos, kv_pos: [B, H, T] int32 positions (None unless causal or relative).
    rows: None, or [B, H, Tq, K] compacted key lists masking inside tiles.
    ext: extras.Extras (segment ids, f32 [Ht, R, D] tables).
  """
  lay = _layout(q, k, rows, ext, causal)
  fn = functools.partial(_forward_impl, lay=lay, block_q=block_q,
                         block_k=block_k, scale=scale, interpret=interpret)
  rk, rv = _batched_tables(ext, q.shape[0])
  return pallas_support.fold_vmap_into_batch(fn)(
      q, k, v, idx, q_pos, kv_pos, rows, ext.q_segment_ids, ext.kv_segment_ids,
      rk, rv)


def backward(q, k, v, idx, q_pos, kv_pos, rows, ext, lse, do, delta, *, block_q,
             block_k, causal, scale, interpret):
  """Returns (dq, dk, dv, d rel_keys, d rel_values); lse internal, delta from attention_math.

  dq/dk/dv in the input dtypes; table gradients f32 [Ht, R, D] (None without the table).
  """
  lay = _layout(q, k, rows, ext, causal)
  fn = functools.partial(_backward_impl, lay=lay, block_q=block_q,
                         block_k=block_k, scale=scale, interpret=interpret)
  rk, rv = _batched_tables(ext, q.shape[0])
  dq, dk, dv, *table_parts = pallas_support.fold_vmap_into_batch(fn)(
      q, k, v, idx, q_pos, kv_pos, rows, ext.q_segment_ids, ext.kv_segment_ids,
      rk, rv, lse, do, delta)
  b, hk, tk, d = k.shape
  if lay.group > 1:  # per-query-head gradients -> sum over each kv head's group
    dk, dv = (x.reshape(b, hk, lay.group, tk, d).sum(2).astype(k.dtype)
              for x in (dk, dv))
  grads = extras.table_grads(ext, table_parts)
  return (dq, dk, dv, *grads)


def _forward_impl(q, k, v, idx, q_pos, kv_pos, rows, qseg, kvseg, rk, rv, *,
                  lay, block_q, block_k, scale, interpret):
  b, h, tq, d = q.shape
  nq, n_sel = idx.shape[2], idx.shape[3]
  fetch = sparse_indices.forward_fill(idx.reshape(b, h, nq * n_sel))
  sp = _Specs(_slot_coords(h, nq, n_sel), lay, block_q, block_k, d)
  ops, specs = _operands(sp, q, k, v, q_pos, kv_pos, rows, qseg, kvseg, rk, rv,
                         ())
  prefetch = (idx.reshape(-1), fetch.reshape(-1)) + _slot_ranges(
      lay, idx, q_pos, kv_pos, block_q, block_k)
  ops = pallas_support.match_varying(*prefetch, *ops)
  kernel = functools.partial(_fwd_kernel, lay=lay, h=h, nq=nq, n_sel=n_sel,
                             block_k=block_k, scale=scale)
  grid_spec = pltpu.PrefetchScalarGridSpec(
      num_scalar_prefetch=len(prefetch), grid=(b, h, nq, n_sel), in_specs=specs,
      out_specs=[sp.query(d), sp.query(1)],
      scratch_shapes=[pltpu.VMEM((block_q, 1), jnp.float32),
                      pltpu.VMEM((block_q, 1), jnp.float32),
                      pltpu.VMEM((block_q, d), jnp.float32)])
  like = ops[len(prefetch)]
  o, lse = pl.pallas_call(
      kernel, grid_spec=grid_spec,
      out_shape=[pallas_support.out_struct(q.shape, q.dtype, like),
                 pallas_support.out_struct((b, h, tq, 1), jnp.float32, like)],
      compiler_params=_compiler_params(3, 1), interpret=interpret,
      name="block_sparse_fwd_tpu")(*ops)
  return o, lse[..., 0]


def _backward_impl(q, k, v, idx, q_pos, kv_pos, rows, qseg, kvseg, rk, rv, lse,
                   do, delta, *, lay, block_q, block_k, scale, interpret):
  b, h, _, d = q.shape
  nq, n_sel = idx.shape[2], idx.shape[3]
  nk = k.shape[2] // block_k
  tail = (do, lse[..., None], delta[..., None])
  params = dict(lay=lay, h=h, block_k=block_k, scale=scale)

  # dq (and the table gradients): the forward's grid and index maps.
  fetch = sparse_indices.forward_fill(idx.reshape(b, h, nq * n_sel))
  sp = _Specs(_slot_coords(h, nq, n_sel), lay, block_q, block_k, d)
  ops, specs = _operands(sp, q, k, v, q_pos, kv_pos, rows, qseg, kvseg, rk, rv,
                         tail)
  prefetch = (idx.reshape(-1), fetch.reshape(-1)) + _slot_ranges(
      lay, idx, q_pos, kv_pos, block_q, block_k)
  ops = pallas_support.match_varying(*prefetch, *ops)
  like = ops[len(prefetch)]
  out_specs = [sp.query(d)]
  out_shape = [pallas_support.out_struct(q.shape, q.dtype, like)]
  for t in (rk, rv):
    if t is not None:
      out_specs.append(sp.table_out(t.shape[2:]))
      out_shape.append(pallas_support.out_struct((b, h) + t.shape[2:],
                                                 jnp.float32, like))
  # Resident table-gradient blocks make the query-block axis sequential.
  n_parallel = 2 if lay.relative else 3
  dq, *table_parts = pl.pallas_call(
      functools.partial(_dq_kernel, nq=nq, n_sel=n_sel, **params),
      grid_spec=pltpu.PrefetchScalarGridSpec(
          num_scalar_prefetch=len(prefetch), grid=(b, h, nq, n_sel),
          in_specs=specs, out_specs=out_specs,
          scratch_shapes=[pltpu.VMEM((block_q, d), jnp.float32)]),
      out_shape=out_shape,
      compiler_params=_compiler_params(n_parallel, 4 - n_parallel),
      interpret=interpret, name="block_sparse_dq_tpu")(*ops)

  # dk/dv: one grid step per (q block, kv block) pair, sorted by kv block.
  pair_q, pair_kv = sparse_indices.pairs_by_kv_block(idx, nk,
                                                     one_per_kv_block=True)
  n_pairs = pair_q.shape[-1]
  pair_q_fetch = sparse_indices.forward_fill(pair_q)
  pair_kv_fetch = jnp.minimum(pair_kv, nk - 1)
  sp = _Specs(_pair_coords(h, n_pairs), lay, block_q, block_k, d)
  ops, specs = _operands(sp, q, k, v, q_pos, kv_pos, rows, qseg, kvseg, rk, rv,
                         tail)
  prefetch = (pair_q.reshape(-1), pair_q_fetch.reshape(-1),
              pair_kv_fetch.reshape(-1)) + _ranges(
                  lay, q_pos, kv_pos, pair_q, pair_kv, block_q, block_k)
  ops = pallas_support.match_varying(*prefetch, *ops)
  like = ops[len(prefetch)]
  # Per query head; with GQA in f32, summed over the group by the caller.
  grad_dtype = (lambda x: x.dtype) if lay.group == 1 else (lambda x: jnp.float32)
  per_head = (b, h) + k.shape[2:]
  dk, dv = pl.pallas_call(
      functools.partial(_dkv_kernel, n_pairs=n_pairs, **params),
      grid_spec=pltpu.PrefetchScalarGridSpec(
          num_scalar_prefetch=len(prefetch), grid=(b, h, n_pairs),
          in_specs=specs, out_specs=[sp.kv_out(), sp.kv_out()],
          scratch_shapes=[pltpu.VMEM((block_k, d), jnp.float32),
                          pltpu.VMEM((block_k, d), jnp.float32)]),
      out_shape=[pallas_support.out_struct(per_head, grad_dtype(k), like),
                 pallas_support.out_struct(per_head, grad_dtype(v), like)],
      compiler_params=_compiler_params(2, 1), interpret=interpret,
      name="block_sparse_dkv_tpu")(*ops)
  return (dq, dk, dv, *table_parts)
