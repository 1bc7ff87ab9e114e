"""Shaw-style relative positions inside the sparse-attention ops: buckets, XLA helpers, tile loops.

Semantics (Shaw, Uszkoreit and Vaswani 2018, as T2T's `dot_product_attention_relative`, which
the Routing Transformer's official code calls). With tables rel_keys / rel_values of
R = 2M + 1 rows (M = max distance) the query at position q_pos[i] and the key at kv_pos[j] use
the bucket

    r(i, j) = clip(kv_pos[j] - q_pos[i], -M, M) + M      (key minus query, as T2T)

and
    s_ij = scale * q_i . (k_j + rel_keys[r(i, j)])
    o_i  = sum_j p_ij (v_j + rel_values[r(i, j)]).

Nothing [Tq, Tk]-sized is built:

* the XLA path and the reference compute q . rel_keys per query ([.., R]) and gather it by
  bucket (`gather`), and sum probabilities / score gradients into buckets (`bucket_sums`);
* on default positions (arange: inside a [bq, bk] tile of consecutive positions the bucket
  depends only on the diagonal j - i) the XLA path reads each tile's U = bq + bk - 1 diagonals
  as U rows of the edge-padded table (`Diagonals`) and moves between tile
  and diagonal layouts by pad-and-reshape (`skew` / `unskew`): no per-element gather or
  scatter, and the value and dq terms become [bq, U] x [U, D] matmuls;
* on a causal local window (`Window`: query block qb reads kv blocks qb - S + 1 .. qb, blocks
  of one size b, default positions) the whole window of W = S * b keys is one skew of W + 1
  diagonals, about half the columns of S tiles' 2b - 1 each, and every product runs on rows
  shared by all query blocks: one large matmul each;
* the Pallas bodies walk, per tile, only the buckets the tile can contain (`block_ranges`: from
  the min / max positions of its query block and key block, so a tile whose distances all clip
  to one end costs one step) and fold each bucket in with a select over the tile (`TileTerms`).
  That is O(bq * bk) VPU work per bucket, i.e. O(bq * bk * (bq + bk)) per tile of consecutive
  positions: correct for any positions (permuted, gathered windows), but slower than the tile's
  QK matmul. A banded (skew / strided-roll) variant for consecutive positions is future work.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def buckets(q_pos, kv_pos, max_distance: int):
  """clip(kv_pos - q_pos, -M, M) + M for broadcastable int arrays."""
  return jnp.clip(kv_pos - q_pos, -max_distance, max_distance) + max_distance


def block_ranges(q_pos, kv_pos, q_blocks, kv_blocks, *, block_q, block_k,
                 max_distance):
  """Lowest and highest bucket of each (query block, kv block) tile.

  Args:
    q_pos: int32 [B, H, Tq]; kv_pos: int32 [B, H, Tk].
    q_blocks, kv_blocks: int32 [B, H, P] block numbers (out-of-range ones are clamped;
      their tiles are skipped by the kernels anyway).

  Returns:
    (lo, hi) int32 [B, H, P].
  """
  b, h, tq = q_pos.shape
  qb = q_pos.reshape(b, h, tq // block_q, block_q)
  kb = kv_pos.reshape(b, h, kv_pos.shape[-1] // block_k, block_k)

  def take(x, i):
    return jnp.take_along_axis(x, jnp.clip(i, 0, x.shape[-1] - 1), axis=-1)

  lo = buckets(take(qb.max(-1), q_blocks), take(kb.min(-1), kv_blocks), max_distance)
  hi = buckets(take(qb.min(-1), q_blocks), take(kb.max(-1), kv_blocks), max_distance)
  return lo.astype(jnp.int32), hi.astype(jnp.int32)


def table_scores(x, table):
  """x [B, H, ..., D] . table [Ht, R, D] -> f32 [B, H, ..., R] (query head h reads row h or 0)."""
  x = x.astype(jnp.float32)
  if table.shape[0] == 1:
    return jnp.einsum("...d,rd->...r", x, table[0])
  return jnp.einsum("bh...d,hrd->bh...r", x, table)


def table_values(weights, table):
  """weights [B, H, ..., R] @ table [Ht, R, D] -> f32 [B, H, ..., D]."""
  weights = weights.astype(jnp.float32)
  if table.shape[0] == 1:
    return jnp.einsum("...r,rd->...d", weights, table[0])
  return jnp.einsum("bh...r,hrd->bh...d", weights, table)


def table_grad(weights, x, heads: int):
  """sum over B and ... of weights [B, H, ..., R] (x) x [B, H, ..., D] -> f32 [heads, R, D]."""
  g = jnp.einsum("bh...r,bh...d->hrd", weights.astype(jnp.float32),
                 x.astype(jnp.float32))
  return g.sum(0, keepdims=True) if heads == 1 else g


def gather(values, bucket):
  """values [..., R] at bucket [..., n] (broadcast on the leading axes) -> [..., n]."""
  lead = jnp.broadcast_shapes(values.shape[:-1], bucket.shape[:-1])
  values = jnp.broadcast_to(values, lead + values.shape[-1:])
  bucket = jnp.broadcast_to(bucket, lead + bucket.shape[-1:])
  return jnp.take_along_axis(values, bucket, axis=-1, mode="promise_in_bounds")


def bucket_sums(x, bucket, num_buckets: int):
  """Sums x [..., n] into buckets [..., n] (broadcast) -> [..., R]; the transpose of `gather`."""
  bucket = jnp.broadcast_to(bucket, x.shape)
  n = x.shape[-1]
  rows = x.reshape(-1, n)
  out = jnp.zeros((rows.shape[0], num_buckets), x.dtype)
  out = out.at[jnp.arange(rows.shape[0])[:, None], bucket.reshape(-1, n)].add(
      rows, mode="promise_in_bounds")
  return out.reshape(x.shape[:-1] + (num_buckets,))


@dataclasses.dataclass(frozen=True)
class TileTerms:
  """The relative terms of one [bq, bk] tile inside a Pallas body.

  key_row / value_row: r -> the f32 [1, D] row r of rel_keys / rel_values (None: no table).
  lo, hi: scalar bounds of the buckets present in the tile (block_ranges).
  """
  bucket: Any
  lo: Any
  hi: Any
  key_row: Callable | None
  value_row: Callable | None
  scale: float

  def _loop(self, body, init):
    return lax.fori_loop(self.lo, self.hi + 1, body, init)

  def scores(self, s, q, dp=None, do=None):
    """(s + scale * q . rel_keys[r], dp + do . rel_values[r]); dp stays None if not given."""
    use_k = self.key_row is not None
    use_v = self.value_row is not None and dp is not None
    if not (use_k or use_v):
      return s, dp
    qf = q.astype(jnp.float32)
    dof = do.astype(jnp.float32) if use_v else None

    def body(r, carry):
      s, dp = carry
      hit = self.bucket == r
      if use_k:
        c = jnp.sum(qf * self.key_row(r), axis=1, keepdims=True) * self.scale
        s = s + jnp.where(hit, c, 0.0)
      if use_v:
        c = jnp.sum(dof * self.value_row(r), axis=1, keepdims=True)
        dp = dp + jnp.where(hit, c, 0.0)
      return s, dp

    return self._loop(body, (s, dp))

  def values(self, p, d: int):
    """sum_j p_ij rel_values[r(i, j)]: f32 [bq, d] (p f32 [bq, bk], un-normalised is fine)."""

    def body(r, acc):
      pr = jnp.sum(jnp.where(self.bucket == r, p, 0.0), axis=1, keepdims=True)
      return acc + pr * self.value_row(r)

    return self._loop(body, jnp.zeros((p.shape[0], d), jnp.float32))

  def grads(self, ds, p, q, do, add_key_grad, add_value_grad):
    """The relative part of dq (f32 [bq, D]); table gradient rows go to the callbacks.

    add_key_grad(r, row) / add_value_grad(r, row) receive f32 [1, D] rows:
    d rel_keys[r] += scale * sum_{r(i,j)=r} ds_ij q_i and d rel_values[r] += sum p_ij do_i.
    """
    qf = q.astype(jnp.float32)
    dof = do.astype(jnp.float32)
    use_k = self.key_row is not None
    use_v = self.value_row is not None

    def body(r, dq):
      hit = self.bucket == r
      if use_k:
        dsr = jnp.sum(jnp.where(hit, ds, 0.0), axis=1, keepdims=True)
        dq = dq + dsr * self.key_row(r) * self.scale
        add_key_grad(r, jnp.sum(dsr * qf, axis=0, keepdims=True) * self.scale)
      if use_v:
        pr = jnp.sum(jnp.where(hit, p, 0.0), axis=1, keepdims=True)
        add_value_grad(r, jnp.sum(pr * dof, axis=0, keepdims=True))
      return dq

    return self._loop(body, jnp.zeros(q.shape, jnp.float32))


def skew(w, block_k: int):
  """Diagonal layout -> tile: w [.., bq, U] -> [.., bq, bk], out[i, j] = w[i, j - i + bq - 1].

  U = bq + bk - 1. Row i of the flattened w, read from offset bq - 1 with stride U - 1, is
  exactly the tile's row i: a pad-free slice and reshape. A narrower w (bk < U < bq + bk - 1)
  is read the same way, but where j - i + bq - 1 >= U the slice runs into row i + 1's first
  diagonals: the caller masks those entries (`Window`).
  """
  *lead, bq, u = w.shape
  flat = w.reshape(*lead, bq * u)[..., bq - 1:bq - 1 + bq * (u - 1)]
  return flat.reshape(*lead, bq, u - 1)[..., :block_k]


def unskew(x, size: int | None = None):
  """Tile -> diagonal layout, the transpose of `skew`: x [.., bq, bk] -> [.., bq, U] with
  out[i, j - i + bq - 1] = x[i, j] and zeros elsewhere; U = `size` (default bq + bk - 1; a
  narrower one is the transpose of skew's wrapped read, which adds the entries past row i's
  last diagonal to row i + 1's first: zeros wherever the caller masked them)."""
  *lead, bq, bk = x.shape
  u = bq + bk - 1 if size is None else size
  pad = [(0, 0)] * len(lead)
  x = jnp.pad(x, pad + [(0, 0), (0, u - 1 - bk)]).reshape(*lead, bq * (u - 1))
  return jnp.pad(x, pad + [(bq - 1, 1)]).reshape(*lead, bq, u)


@dataclasses.dataclass(frozen=True)
class Diagonals:
  """Where each tile's diagonals sit in the buckets, for tiles of default positions.

  The tile of query block qb and kv block kb has bucket clip(kb*bk - qb*bq + j - i, -M, M) + M;
  diagonal u = j - i + bq - 1 has bucket clip(first + u) with first = kb*bk - qb*bq - (bq-1)
  + M. Arrays along R are edge-padded by U on both sides, so clip(first + u) is row
  start + u of the padded array, start = clip(first, -U, R - 1) + U, for every u < U.

  start: int32 [B, H, c, n_sel]; size: U; buckets: R.
  """
  start: Any
  size: int
  buckets: int

  @classmethod
  def of_tiles(cls, q_block_start, kv_blocks, *, block_q, block_k, max_distance):
    """q_block_start [B, H, c] (first query position), kv_blocks [B, H, c, n_sel]."""
    u = block_q + block_k - 1
    r = 2 * max_distance + 1
    first = kv_blocks * block_k - q_block_start[..., None] - (block_q - 1) + max_distance
    return cls(jnp.clip(first, -u, r - 1) + u, u, r)

  def _pad(self, x, axis):
    lo = jnp.repeat(lax.slice_in_dim(x, 0, 1, axis=axis), self.size, axis=axis)
    hi = jnp.repeat(lax.slice_in_dim(x, x.shape[axis] - 1, x.shape[axis], axis=axis),
                    self.size, axis=axis)
    return jnp.concatenate([lo, x, hi], axis=axis)

  def scores(self, x, table):
    """x_i . table[diagonal u] per tile: x [B, H, c, bq, D], table [Ht, R, D] -> f32
    [B, H, c, n_sel, bq, U] (a [bq, D] x [D, U] matmul per tile on its own table rows)."""
    return jnp.einsum("bhcqd,bhcsud->bhcsqu", x.astype(jnp.float32), self.table_rows(table))

  def table_rows(self, table):
    """table [Ht, R, D] -> the rows of each tile's diagonals [B, H, c, n_sel, U, D]."""
    padded = self._pad(table, 1)
    rows = self.start[..., None] + jnp.arange(self.size)
    heads = jnp.arange(self.start.shape[1])[None, :, None, None, None]
    return padded[heads if table.shape[0] > 1 else 0, rows]

  def table_grad(self, g, heads: int):
    """Per-tile diagonal rows g [B, H, c, n_sel, U, D] summed into f32 [heads, R, D]."""
    g = g.astype(jnp.float32)
    rows = self.start[..., None] + jnp.arange(self.size)
    hi = (jnp.arange(self.start.shape[1]) if heads > 1 else
          jnp.zeros(self.start.shape[1], jnp.int32))[None, :, None, None, None]
    hi = jnp.broadcast_to(hi, rows.shape)
    padded = jnp.zeros((heads, self.buckets + 2 * self.size, g.shape[-1]), jnp.float32)
    padded = padded.at[hi, rows].add(g)
    core = padded[:, self.size:self.size + self.buckets]
    core = core.at[:, 0].add(padded[:, :self.size].sum(1))
    return core.at[:, -1].add(padded[:, self.size + self.buckets:].sum(1))


@dataclasses.dataclass(frozen=True)
class Window:
  """The Shaw terms of a causal local window, in one skew per query block.

  Query block qb reads the W = slots * b keys of kv blocks qb - slots + 1 .. qb (blocks of one
  size b, default positions; sparse_indices.band_indices keeps that slot order), so query i
  and window key j are d = j - i - (slots - 1) * b apart, and diagonal u = j - i + b - 1 in
  [0, W] holds bucket rows[u] for every query block. The module's `skew` reads the diagonals
  [b, W + 1] as the window [b, W] by one flat slice, narrower than a tile's b + W - 1: it runs
  into the next row's diagonals only where j - i > W - b + 1, i.e. d >= 2, which the causal
  mask removes (and whose probabilities, hence `unskew`'s inputs, are 0).
  """
  rows: np.ndarray  # int [W + 1]
  block: int

  @classmethod
  def of(cls, slots: int, *, block: int, max_distance: int):
    d = np.arange(slots * block + 1) - (block - 1) - (slots - 1) * block
    return cls(np.clip(d, -max_distance, max_distance) + max_distance, block)

  def skew(self, w):
    """Diagonals [.., b, W + 1] -> window [.., b, W]: out[i, j] = w[i, j - i + b - 1]."""
    return skew(w, w.shape[-1] - 1)

  def unskew(self, x):
    """Window [.., b, W] -> diagonals [.., b, W + 1], the transpose of `skew`."""
    return unskew(x, x.shape[-1] + 1)

  def _table(self, table):
    rows = table[:, self.rows]  # [Ht, W + 1, D]
    return (rows[0], "ud") if table.shape[0] == 1 else (rows, "hud")

  def scores(self, x, table):
    """x_i . table[rows[u]]: x [B, H, c, b, D] -> f32 [B, H, c, b, W + 1], one matmul."""
    rows, spec = self._table(table)
    return jnp.einsum(f"bhcqd,{spec}->bhcqu", x.astype(jnp.float32), rows)

  def values(self, w, table):
    """sum_u w[.., u] table[rows[u]]: w [B, H, c, b, W + 1] -> f32 [B, H, c, b, D]."""
    rows, spec = self._table(table)
    return jnp.einsum(f"bhcqu,{spec}->bhcqd", w.astype(jnp.float32), rows)

  def table_grad(self, w, x, heads: int, buckets: int):
    """d table[r] = sum of w[.., u] x_i over the diagonals u with rows[u] = r: f32 [heads,
    buckets, D] (w [B, H, c, b, W + 1], x [B, H, c, b, D])."""
    g = jnp.einsum("bhcqu,bhcqd->hud", w.astype(jnp.float32), x.astype(jnp.float32))
    g = g.sum(0, keepdims=True) if heads == 1 else g
    return jnp.zeros((heads, buckets, g.shape[-1]), jnp.float32).at[:, self.rows].add(g)
