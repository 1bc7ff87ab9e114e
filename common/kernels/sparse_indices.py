"""Index bookkeeping shared by the sparse-attention ops, all traceable under jit.

Conventions: an index list is an int32 array whose last axis lists targets
(key/value blocks or keys); -1 marks an empty slot. Every op first passes its
lists through `compact_unique`, so that all implementations (and the dense
reference, which builds a boolean mask) agree on one meaning: *the set of
listed targets*. Duplicates count once and out-of-range values are dropped
(they cannot raise under jit, so they are skipped like -1).

The backward passes need the transpose of "query block -> selected kv blocks".
We build it as a list of (query block, kv block) pairs sorted by kv block (a
CSR layout). Its length is exactly the number of slots, nQ * n_sel, so there is
no padded maximum to guess: a kv block selected by every query block simply
owns a run of nQ pairs.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def compact_unique(idx: jax.Array, upper: int) -> jax.Array:
  """Sorts each list ascending, drops duplicates and out-of-range values; -1 pads the end."""
  big = jnp.int32(upper)
  key = jnp.where((idx >= 0) & (idx < upper), idx, big)
  key = jnp.sort(key, axis=-1)
  dup = jnp.concatenate(
      [jnp.zeros_like(key[..., :1], dtype=bool), key[..., 1:] == key[..., :-1]],
      axis=-1)
  key = jnp.sort(jnp.where(dup, big, key), axis=-1)
  return jnp.where(key == big, -1, key).astype(jnp.int32)


def static_band(idx, num_kv_blocks: int):
  """The offsets of a static band pattern, or None.

  `idx` is a band when it is a numpy array (known at trace time) and every list's set is
  {i + o : o in offsets, 0 <= i + o < nK} for query block i, with the same offsets for every
  batch element and head: local windows and block-diagonal patterns.

  Returns:
    sorted tuple of int offsets, or None (a traced or non-band `idx`).
  """
  if not isinstance(idx, np.ndarray) or idx.ndim != 4:
    return None
  q_block = np.arange(idx.shape[2])[:, None]
  valid = (idx >= 0) & (idx < num_kv_blocks)
  offsets = np.unique((idx - q_block)[valid])
  if offsets.size == 0:
    return None
  listed = (((idx - q_block)[..., None] == offsets) & valid[..., None]).any(axis=3)
  in_range = (q_block + offsets >= 0) & (q_block + offsets < num_kv_blocks)
  if not np.array_equal(listed, np.broadcast_to(in_range, listed.shape)):
    return None
  return tuple(int(o) for o in offsets)


def causal_window(size: int) -> tuple[int, ...]:
  """The block offsets of a causal local window of `size` blocks: the query's own block and the
  size - 1 before it, as `static_band` returns them and `band_indices` takes them."""
  return tuple(range(1 - size, 1))


def band_indices(offsets, batch: int, heads: int, num_q_blocks: int, num_kv_blocks: int):
  """numpy int32 [B, H, nQ, len(offsets)]: slot s of query block i holds block i + offsets[s],
  or -1 outside [0, nK). Unlike compacted lists, a slot always holds the same offset; numpy, so
  that block_sparse_attention sees the band (`static_band`)."""
  blocks = np.arange(num_q_blocks)[:, None] + np.asarray(offsets)[None, :]
  blocks = np.where((blocks >= 0) & (blocks < num_kv_blocks), blocks, -1).astype(np.int32)
  return np.broadcast_to(blocks, (batch, heads) + blocks.shape)


def prune_causal_blocks(idx, q_positions, kv_positions, block_q, block_k):
  """Drops selected blocks in which no query may see any key (max q pos < min k pos).

  Such tiles would be fully masked anyway; dropping them here means no
  implementation spends a DMA or a matmul on them.
  """
  b, h, tq = q_positions.shape
  tk = kv_positions.shape[-1]
  q_max = q_positions.reshape(b, h, tq // block_q, block_q).max(-1)
  k_min = kv_positions.reshape(b, h, tk // block_k, block_k).min(-1)
  k_min_sel = jnp.take_along_axis(k_min[:, :, None, :], jnp.maximum(idx, 0),
                                  axis=-1)
  return jnp.where(q_max[..., None] >= k_min_sel, idx, -1)


def forward_fill(idx: jax.Array) -> jax.Array:
  """Replaces each -1 by the last valid entry before it on the last axis (0 if none).

  TPU block specs read these as the block to fetch: repeating the previous
  block index makes the pipeline skip the copy for an empty slot.
  """
  pos = jnp.where(idx >= 0, jnp.arange(idx.shape[-1], dtype=jnp.int32), -1)
  last = jax.lax.cummax(pos, axis=idx.ndim - 1)
  filled = jnp.take_along_axis(idx, jnp.maximum(last, 0), axis=-1)
  return jnp.where(last >= 0, filled, 0).astype(jnp.int32)


def pairs_by_kv_block(idx: jax.Array, num_kv_blocks: int, *,
                      one_per_kv_block: bool):
  """Transposes [B, H, nQ, n_sel] block lists into (q block, kv block) pairs sorted by kv block.

  Args:
    idx: compacted block lists (`compact_unique`), -1 for empty slots.
    num_kv_blocks: nK.
    one_per_kv_block: add one empty pair (q block -1) per kv block, so that a
      kernel iterating over pairs visits every kv block at least once and so
      writes its dk/dv (zeros if nobody selected it). The TPU dk/dv kernel
      needs this; the GPU one has a program per kv block anyway.

  Returns:
    pair_q: [B, H, P] query block of each pair, -1 for empty pairs.
    pair_kv: [B, H, P] kv block of each pair, ascending; empty slots of `idx`
      come last with kv block `num_kv_blocks`.
    P = nQ * n_sel (+ nK with one_per_kv_block).
  """
  b, h, nq, n_sel = idx.shape
  q_of = jnp.broadcast_to(jnp.arange(nq, dtype=jnp.int32)[:, None], (nq, n_sel))
  pair_q = jnp.where(idx >= 0, q_of, -1).reshape(b, h, nq * n_sel)
  pair_kv = jnp.where(idx >= 0, idx, num_kv_blocks).reshape(b, h, nq * n_sel)
  if one_per_kv_block:
    kv_all = jnp.broadcast_to(jnp.arange(num_kv_blocks, dtype=jnp.int32),
                              (b, h, num_kv_blocks))
    pair_q = jnp.concatenate([pair_q, jnp.full_like(kv_all, -1)], axis=-1)
    pair_kv = jnp.concatenate([pair_kv, kv_all], axis=-1)
  order = jnp.argsort(pair_kv, axis=-1, stable=True)
  return (jnp.take_along_axis(pair_q, order, axis=-1),
          jnp.take_along_axis(pair_kv, order, axis=-1))


def run_starts(sorted_keys: jax.Array, num_runs: int, run_width: int = 1):
  """Start and length of run r (keys in [r*w, (r+1)*w)) in lists sorted on the last axis."""
  edges = jnp.arange(num_runs + 1, dtype=jnp.int32) * run_width
  flat = sorted_keys.reshape(-1, sorted_keys.shape[-1])
  pos = jax.vmap(lambda s: jnp.searchsorted(s, edges, side="left"))(flat)
  pos = pos.reshape(sorted_keys.shape[:-1] + (num_runs + 1,)).astype(jnp.int32)
  return pos[..., :-1], pos[..., 1:] - pos[..., :-1]


def touched_blocks(rows: jax.Array, block_q: int, block_k: int,
                   num_kv_blocks: int) -> jax.Array:
  """Per query block, the kv blocks that any of its queries' keys fall in.

  Args:
    rows: [B, H, Tq, K] compacted key lists.

  Returns:
    [B, H, Tq // block_q, min(block_q * K, nK)] compacted block lists.
  """
  b, h, tq, kk = rows.shape
  blocks = jnp.where(rows >= 0, rows // block_k, -1)
  blocks = blocks.reshape(b, h, tq // block_q, block_q * kk)
  width = min(block_q * kk, num_kv_blocks)
  return compact_unique(blocks, num_kv_blocks)[..., :width]


def pairs_by_key(rows: jax.Array, num_keys: int):
  """Transposes [B, H, Tq, K] key lists into (query, key) pairs sorted by key.

  Returns:
    pair_q: [B, H, Tq * K] query of each pair (-1 for empty slots, at the end).
    pair_key: [B, H, Tq * K] key of each pair, ascending (num_keys for empty).
  """
  b, h, tq, kk = rows.shape
  q_of = jnp.broadcast_to(jnp.arange(tq, dtype=jnp.int32)[:, None], (tq, kk))
  pair_q = jnp.where(rows >= 0, q_of, -1).reshape(b, h, tq * kk)
  pair_key = jnp.where(rows >= 0, rows, num_keys).reshape(b, h, tq * kk)
  order = jnp.argsort(pair_key, axis=-1, stable=True)
  return (jnp.take_along_axis(pair_q, order, axis=-1),
          jnp.take_along_axis(pair_key, order, axis=-1))
