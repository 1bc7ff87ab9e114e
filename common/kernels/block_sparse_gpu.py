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

Optional inputs:
* segment ids: the [B, T] rows are sliced like the positions and folded into
  the tile mask;
* GQA: k/v BlockSpecs map query head h to kv head h // G; the dk/dv programs
  run per query head and write f32 [B, H, Tk, D], summed over each group
  afterwards (gpu_support.sum_groups);
* Shaw tables (relative_positions.py): the program reads its head's [R, D]
  table, computes each tile's bucket range from the min / max positions it
  loaded, and `TileTerms` walks it. The dq program adds the tables' gradient
  rows into zero-initialised f32 [B, H, R, D] accumulators with atomic adds
  (several query-block programs share a head), summed over B (and H for a
  shared table) afterwards. Atomics make the last bits of the table gradients
  depend on scheduling; everything else is deterministic.

Tiles: the bodies run on tiles of at most `tile_rows` rows, not on the op's
blocks. A block larger than that is cut into sub-blocks and the lists are
rewritten to match (`_in_tiles`: a listed block becomes its sub-blocks, a query
block's list is repeated for each of its sub-blocks, then causally empty
sub-tiles are dropped). The pattern is the same; only Triton's shared memory
per program shrinks. Blocks of 128 in f32 at D = 64 asked for 257 KiB of shared
memory on an H200, which has 227 KiB per block (measured 2026-12-04, the
routing layer on a GPU); the device check's tiles, [64, 128] bf16, compile, and
16 KiB tiles of at most 64 rows are the same size or smaller.

Triton needs power-of-two tensor sizes: block_q, block_k and D must be powers
of two (>= 16 for tensor-core dots, checked by the op on real GPUs), and the
1-D index arrays are padded here to a power of two with -1. Table rows are
loaded one [1, D] row at a time, so R is free.
"""
from __future__ import annotations

import dataclasses
import functools
import types

import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from common.kernels import attention_math
from common.kernels import extras
from common.kernels import gpu_support
from common.kernels import pallas_support
from common.kernels import relative_positions as rel
from common.kernels import sparse_indices
from common.kernels.gpu_support import head, pad_pow2, tile
from common.kernels.pallas_support import NN, NT, TN, dot

_COMPILER_PARAMS = gpu_support.compiler_params(num_stages=2)
# The largest tile a body loads (module docstring): rows, and bytes of a [rows, D] tile.
_MAX_TILE_ROWS, _MAX_TILE_BYTES = 64, 16 * 1024


def tile_rows(block: int, d: int, dtype) -> int:
  """Rows of the bodies' q or k/v tiles for an op block of `block` rows: a power of two that
  divides it (>= 16 where the block is, for tensor-core dots)."""
  fits = max(16, _MAX_TILE_BYTES // (d * jnp.dtype(dtype).itemsize))
  return min(block, _MAX_TILE_ROWS, fits)


def _in_tiles(q, k, idx, q_pos, kv_pos, causal, block_q, block_k):
  """(lists, tile_q, tile_k): the op's compacted kv-block lists [B, H, Tq // block_q, n] as
  lists of tile_k-row key tiles per tile_q-row query tile, compacted (valid entries first)."""
  d, dtype = q.shape[-1], q.dtype
  tile_q, tile_k = tile_rows(block_q, d, dtype), tile_rows(block_k, d, dtype)
  rq, rk = block_q // tile_q, block_k // tile_k
  if rq == rk == 1:
    return idx, block_q, block_k
  if rk > 1:
    sub = idx[..., None] * rk + jnp.arange(rk, dtype=idx.dtype)
    idx = jnp.where(idx[..., None] >= 0, sub, -1).reshape(*idx.shape[:-1], -1)
  idx = jnp.repeat(idx, rq, axis=2)
  if causal:   # e.g. the upper sub-tiles of a diagonal block
    idx = sparse_indices.prune_causal_blocks(idx, q_pos, kv_pos, tile_q, tile_k)
  return sparse_indices.compact_unique(idx, k.shape[2] // tile_k), tile_q, tile_k


@dataclasses.dataclass(frozen=True)
class _Layout:
  """Which optional operands a call has (fixes the kernels' ref order)."""
  causal: bool
  positions: bool
  segments: bool
  rel_k: bool
  rel_v: bool
  max_distance: int

  @property
  def relative(self) -> bool:
    return self.rel_k or self.rel_v


def _layout(ext, causal):
  return _Layout(causal=causal, positions=causal or ext.relative,
                 segments=ext.segments, rel_k=ext.rel_keys is not None,
                 rel_v=ext.rel_values is not None,
                 max_distance=ext.max_distance if ext.relative else 0)


def _unpack(refs, lay, names):
  """Kernel refs: `names` first, then [qpos, kvpos], [qseg, kvseg], [rel_k], [rel_v], rest."""
  it = iter(refs)
  r = types.SimpleNamespace(**{n: next(it) for n in names})
  r.qpos, r.kvpos = (next(it), next(it)) if lay.positions else (None, None)
  r.qseg, r.kvseg = (next(it), next(it)) if lay.segments else (None, None)
  r.rel_k = next(it) if lay.rel_k else None
  r.rel_v = next(it) if lay.rel_v else None
  return r, list(it)


def _optional_operands(lay, q_pos, kv_pos, ext, q_side, kv_side):
  """Operands and specs after the fixed ones. q_side / kv_side: (spec of a [B, H, T] array, of a
  [B, T] array) for the query and the key positions of the grid."""
  ops, specs = [], []
  if lay.positions:
    ops += [q_pos, kv_pos]
    specs += [q_side[0], kv_side[0]]
  if lay.segments:
    ops += [ext.q_segment_ids, ext.kv_segment_ids]
    specs += [q_side[1], kv_side[1]]
  for t in (ext.rel_keys, ext.rel_values):
    if t is not None:
      ops.append(t)
      specs.append(gpu_support.table(t))
  return ops, specs


def _tile(r, lay, qpos, kpos, qseg, kseg, scale):
  """(mask or None, TileTerms or None) of a tile from its loaded positions / segment ids."""
  mask = None
  if lay.causal:
    mask = qpos[:, None] >= kpos[None, :]
  if lay.segments:
    same = qseg[:, None] == kseg[None, :]
    mask = same if mask is None else mask & same
  terms = None
  if lay.relative:
    m = lay.max_distance
    row = lambda ref: None if ref is None else (lambda i: ref[pl.ds(i, 1), :])
    terms = rel.TileTerms(
        rel.buckets(qpos[:, None], kpos[None, :], m),
        rel.buckets(jnp.max(qpos), jnp.min(kpos), m),
        rel.buckets(jnp.min(qpos), jnp.max(kpos), m),
        row(r.rel_k), row(r.rel_v), scale)
  return mask, terms


def _kv_slices(r, lay, start, block_k):
  """kv positions and segment ids of keys [start, start + block_k) (None where absent)."""
  kpos = r.kvpos[pl.ds(start, block_k)] if lay.positions else None
  kseg = r.kvseg[pl.ds(start, block_k)] if lay.segments else None
  return kpos, kseg


def _query_vectors(r, lay):
  qpos = r.qpos[...] if lay.positions else None
  qseg = r.qseg[...] if lay.segments else None
  return qpos, qseg


def _fwd_kernel(*refs, lay, block_k, scale):
  r, (o_ref, lse_ref) = _unpack(refs, lay, ("q", "k", "v", "idx"))
  q = r.q[...]
  qpos, qseg = _query_vectors(r, lay)
  count = jnp.sum((r.idx[...] >= 0).astype(jnp.int32))

  def body(j, carry):
    start = pl.multiple_of(r.idx[j] * block_k, block_k)
    s = dot(q, r.k[pl.ds(start, block_k), :], NT) * scale
    kpos, kseg = _kv_slices(r, lay, start, block_k)
    mask, terms = _tile(r, lay, qpos, kpos, qseg, kseg, scale)
    extra = None
    if terms is not None:
      s, _ = terms.scores(s, q)
      if lay.rel_v:
        extra = lambda p: terms.values(p, q.shape[1])
    return attention_math.online_softmax_update(
        *carry, s, mask, r.v[pl.ds(start, block_k), :],
        lambda p, v: dot(p, v, NN), extra=extra)

  bq, d = q.shape
  init = (jnp.full((bq,), attention_math.MASK_VALUE, jnp.float32),
          jnp.zeros((bq,), jnp.float32), jnp.zeros((bq, d), jnp.float32))
  o, lse = attention_math.finalize(*lax.fori_loop(0, count, body, init))
  o_ref[...] = o.astype(o_ref.dtype)
  lse_ref[...] = lse


def _atomic_rows(ref):
  def add(i, row):
    plgpu.atomic_add(ref, (pl.ds(i, 1), slice(None)), row)
  return add


def _dq_kernel(*refs, lay, block_k, scale):
  r, tail = _unpack(refs, lay, ("q", "k", "v", "idx"))
  do_ref, lse_ref, delta_ref, *tail = tail
  # Aliased zero accumulators of the table gradients come in as inputs and go out as outputs.
  n_tables = lay.rel_k + lay.rel_v
  dq_ref, *table_refs = tail[n_tables:]
  drk_ref = table_refs.pop(0) if lay.rel_k else None
  drv_ref = table_refs.pop(0) if lay.rel_v else None
  q, do = r.q[...], do_ref[...]
  lse, delta = lse_ref[...][:, None], delta_ref[...][:, None]
  qpos, qseg = _query_vectors(r, lay)
  count = jnp.sum((r.idx[...] >= 0).astype(jnp.int32))

  def body(j, dq):
    start = pl.multiple_of(r.idx[j] * block_k, block_k)
    k = r.k[pl.ds(start, block_k), :]
    kpos, kseg = _kv_slices(r, lay, start, block_k)
    mask, terms = _tile(r, lay, qpos, kpos, qseg, kseg, scale)
    s = dot(q, k, NT) * scale
    dp = dot(do, r.v[pl.ds(start, block_k), :], NT)
    if terms is not None:
      s, dp = terms.scores(s, q, dp, do)
    p = jnp.exp(s - lse)
    if mask is not None:
      p = jnp.where(mask, p, 0.0)
    ds = p * (dp - delta)
    dq = dq + dot(ds.astype(k.dtype), k, NN) * scale
    if terms is not None:
      dq = dq + terms.grads(ds, p, q, do,
                            _atomic_rows(drk_ref) if lay.rel_k else None,
                            _atomic_rows(drv_ref) if lay.rel_v else None)
    return dq

  dq = lax.fori_loop(0, count, body, jnp.zeros(q.shape, jnp.float32))
  dq_ref[...] = dq.astype(dq_ref.dtype)


def _dkv_kernel(*refs, lay, block_q, scale):
  r, (dk_ref, dv_ref) = _unpack(
      refs, lay, ("q", "do", "lse", "delta", "k", "v", "pair_q", "start", "count"))
  kb = pl.program_id(2)
  k, v = r.k[...], r.v[...]
  kpos = r.kvpos[...] if lay.positions else None
  kseg = r.kvseg[...] if lay.segments else None
  begin = r.start[kb]

  def body(t, carry):
    dk, dv = carry
    qs = pl.multiple_of(r.pair_q[t] * block_q, block_q)
    rows = pl.ds(qs, block_q)
    q, do = r.q[rows, :], r.do[rows, :]
    qpos = r.qpos[rows] if lay.positions else None
    qseg = r.qseg[rows] if lay.segments else None
    mask, terms = _tile(r, lay, qpos, kpos, qseg, kseg, scale)
    s = dot(q, k, NT) * scale
    dp = dot(do, v, NT)
    if terms is not None:
      s, dp = terms.scores(s, q, dp, do)
    p = jnp.exp(s - r.lse[rows][:, None])
    if mask is not None:
      p = jnp.where(mask, p, 0.0)
    ds = p * (dp - r.delta[rows][:, None])
    return (dk + dot(ds.astype(q.dtype), q, TN),
            dv + dot(p.astype(do.dtype), do, TN))

  zeros = jnp.zeros(k.shape, jnp.float32)
  dk, dv = lax.fori_loop(begin, begin + r.count[kb], body, (zeros, zeros))
  dk_ref[...] = (dk * scale).astype(dk_ref.dtype)
  dv_ref[...] = dv.astype(dv_ref.dtype)


def _query_inputs(q, k, v, idx, q_pos, kv_pos, ext, lay, *, block_q):
  """Operands and BlockSpecs of the (B, H, nQ) grid: q tile, whole-head k/v (of the kv head),
  the padded block list of the query block, then the optional operands."""
  d, tk = q.shape[-1], k.shape[2]
  group = q.shape[1] // k.shape[1]
  idx = pad_pow2(idx)
  ops = [q, k, v, idx]
  specs = [tile(block_q, d), head((tk, d), group), head((tk, d), group),
           pl.BlockSpec((None, None, None, idx.shape[-1]),
                        lambda bi, hi, i: (bi, hi, i, 0))]
  more_ops, more_specs = _optional_operands(
      lay, q_pos, kv_pos, ext,
      (tile(block_q), gpu_support.batch_tile(block_q)),
      (head((tk,)), gpu_support.batch_head(tk)))
  return ops + more_ops, specs + more_specs


def forward(q, k, v, idx, q_pos, kv_pos, ext, *, block_q, block_k, causal,
            scale, interpret):
  """Returns (o, lse [B, H, Tq] internal). idx: compacted [B, H, nQ, n_sel]."""
  b, h, tq, d = q.shape
  lay = _layout(ext, causal)
  idx, block_q, block_k = _in_tiles(q, k, idx, q_pos, kv_pos, causal, block_q, block_k)
  ops, specs = _query_inputs(q, k, v, idx, q_pos, kv_pos, ext, lay,
                             block_q=block_q)
  ops = pallas_support.match_varying(*ops)
  o, lse = pl.pallas_call(
      functools.partial(_fwd_kernel, lay=lay, block_k=block_k, scale=scale),
      grid=(b, h, tq // block_q), in_specs=specs,
      out_specs=[tile(block_q, d), tile(block_q)],
      out_shape=[pallas_support.out_struct(q.shape, q.dtype, ops[0]),
                 pallas_support.out_struct((b, h, tq), jnp.float32, ops[0])],
      compiler_params=_COMPILER_PARAMS, interpret=interpret,
      name="block_sparse_fwd_gpu")(*ops)
  return o, lse


def backward(q, k, v, idx, q_pos, kv_pos, ext, lse, do, delta, *, block_q,
             block_k, causal, scale, interpret):
  """Returns (dq, dk, dv, d rel_keys, d rel_values): dq/dk/dv in the input dtypes, table
  gradients f32 [Ht, R, D] (None without the table)."""
  b, h, tq, d = q.shape
  tk = k.shape[2]
  idx, block_q, block_k = _in_tiles(q, k, idx, q_pos, kv_pos, causal, block_q, block_k)
  nk = tk // block_k
  lay = _layout(ext, causal)

  ops, specs = _query_inputs(q, k, v, idx, q_pos, kv_pos, ext, lay,
                             block_q=block_q)
  ops += [do, lse, delta]
  specs += [tile(block_q, d), tile(block_q), tile(block_q)]
  out_specs, out_shapes, aliases = [tile(block_q, d)], [(q.shape, q.dtype)], {}
  # Table gradients: zero f32 [B, H, R, D] accumulators, aliased input -> output.
  for t in (ext.rel_keys, ext.rel_values):
    if t is not None:
      spec = pl.BlockSpec((None, None) + t.shape[1:],
                          lambda bi, hi, i: (bi, hi, 0, 0))
      aliases[len(ops)] = len(out_specs)
      ops.append(jnp.zeros((b, h) + t.shape[1:], jnp.float32))
      specs.append(spec)
      out_specs.append(spec)
      out_shapes.append(((b, h) + t.shape[1:], jnp.float32))
  ops = pallas_support.match_varying(*ops)
  dq, *table_parts = pl.pallas_call(
      functools.partial(_dq_kernel, lay=lay, block_k=block_k, scale=scale),
      grid=(b, h, tq // block_q), in_specs=specs, out_specs=out_specs,
      out_shape=[pallas_support.out_struct(shape, dtype, ops[0])
                 for shape, dtype in out_shapes],
      input_output_aliases=aliases,
      compiler_params=_COMPILER_PARAMS, interpret=interpret,
      name="block_sparse_dq_gpu")(*ops)

  group = h // k.shape[1]
  pair_q, pair_kv = sparse_indices.pairs_by_kv_block(idx, nk,
                                                     one_per_kv_block=False)
  start, count = sparse_indices.run_starts(pair_kv, nk)
  pair_q, start, count = pad_pow2(pair_q), pad_pow2(start, 0), pad_pow2(count, 0)
  ops = [q, do, lse, delta, k, v, pair_q, start, count]
  specs = [head((tq, d)), head((tq, d)), head((tq,)), head((tq,)),
           tile(block_k, d, group=group), tile(block_k, d, group=group),
           head(pair_q.shape[-1:]), head(start.shape[-1:]),
           head(count.shape[-1:])]
  more_ops, more_specs = _optional_operands(
      lay, q_pos, kv_pos, ext, (head((tq,)), gpu_support.batch_head(tq)),
      (tile(block_k), gpu_support.batch_tile(block_k)))
  dk, dv = gpu_support.dkv_call(
      functools.partial(_dkv_kernel, lay=lay, block_q=block_q, scale=scale),
      ops + more_ops, specs + more_specs, q=q, k=k, v=v, block_k=block_k,
      compiler_params=_COMPILER_PARAMS, interpret=interpret,
      name="block_sparse_dkv_gpu")
  grads = extras.table_grads(ext, table_parts)
  return (dq, gpu_support.sum_groups(dk, k), gpu_support.sum_groups(dv, v),
          *grads)
