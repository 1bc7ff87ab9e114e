"""Gather-based XLA path of row-sparse attention (CPU, and shapes the kernels do not take).

Each query gathers its own K keys and values ([B, H, c, K, D] per chunk of c
queries), so scores are [B, H, Tq, K], never Tq x Tk. A lax.scan over query
chunks bounds the gathered working set by `CHUNK_BYTES`; Tq is padded with
empty queries to a multiple of the chunk. The backward recomputes scores from
the saved lse and scatter-adds per-(query, key) gradients into f32 dk/dv
accumulators carried through the scan.

GQA: rows are gathered from the query head's kv head (h // G), never from a
repeated copy, and dk/dv accumulate into [B, H_kv, Tk, D] directly (the
scatter-add sums the G query heads of a group).

`rows` are compacted key lists (sparse_indices.compact_unique), lse internal.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from common.kernels import attention_math
from common.kernels import pallas_support

# Gathered bytes per scan step: a few MB, so that a chunk's gathered rows are still in cache
# when its products read them. 4 MB against the earlier 64 MB, on the op alone (the `row` rows of
# benchmarks/long_context.py: 4 heads of 64, 64 keys a query, AMD EPYC with 2 MB of L2 a core;
# both trees alternated twice): forward 93 -> 46 ms and forward+backward 234 -> 109 ms at
# Tq = 4096, forward+backward 773 -> 465 ms at 16384.
CHUNK_BYTES = 4 * 2**20


def _chunking(q, rows):
  b, h, tq, d = q.shape
  kk = rows.shape[-1]
  per_query = b * h * kk * (2 * d * q.dtype.itemsize + 4 * 4)
  n_chunks = min(tq, max(1, math.ceil(tq * per_query / CHUNK_BYTES)))
  size = -(-tq // n_chunks)
  return n_chunks, size


def _split(x, n_chunks, size, fill):
  """[B, H, Tq, ...] -> [n_chunks, B, H, size, ...], padding Tq with `fill`."""
  tq = x.shape[2]
  pad = n_chunks * size - tq
  if pad:
    widths = [(0, 0)] * x.ndim
    widths[2] = (0, pad)
    x = jnp.pad(x, widths, constant_values=fill)
  x = x.reshape(x.shape[:2] + (n_chunks, size) + x.shape[3:])
  return jnp.moveaxis(x, 2, 0)


def _merge(x, tq):
  x = jnp.moveaxis(x, 0, 2)
  x = x.reshape(x.shape[:2] + (-1,) + x.shape[4:])
  return x[:, :, :tq]


def _heads(rows, kv_heads):
  """Batch and kv-head index arrays for [B, H, c, K] lists (query head h -> kv head h // G)."""
  b, h = rows.shape[:2]
  bi = jnp.arange(b)[:, None, None, None]
  hi = (jnp.arange(h) // (h // kv_heads))[None, :, None, None]
  return bi, hi


def _gather_rows(x, rows):
  """x [B, H_kv, Tk, D] at rows [B, H, c, K] -> [B, H, c, K, D]."""
  bi, hi = _heads(rows, x.shape[1])
  return x[bi, hi, jnp.maximum(rows, 0)]


def forward(q, k, v, rows, *, scale):
  """Returns (o [B, H, Tq, D], lse [B, H, Tq] internal)."""
  tq = q.shape[2]
  n_chunks, size = _chunking(q, rows)

  def step(_, chunk):
    q_c, rows_c = chunk
    kg, vg = _gather_rows(k, rows_c), _gather_rows(v, rows_c)
    s = jnp.einsum("bhqd,bhqkd->bhqk", q_c, kg,
                   preferred_element_type=jnp.float32) * scale
    p, lse = attention_math.masked_softmax(s, rows_c >= 0, axes=-1)
    o = jnp.einsum("bhqk,bhqkd->bhqd", p.astype(v.dtype), vg,
                   preferred_element_type=jnp.float32)
    return None, (o.astype(q.dtype), lse)

  xs = (_split(q, n_chunks, size, 0), _split(rows, n_chunks, size, -1))
  _, (o, lse) = jax.lax.scan(step, None, xs)
  return _merge(o, tq), _merge(lse, tq)


def backward(q, k, v, rows, lse, do, delta, *, scale):
  """Returns (dq, dk, dv) in the input dtypes."""
  tq = q.shape[2]
  n_chunks, size = _chunking(q, rows)

  def step(carry, chunk):
    dk_acc, dv_acc = carry
    q_c, do_c, lse_c, delta_c, rows_c = chunk
    kg, vg = _gather_rows(k, rows_c), _gather_rows(v, rows_c)
    s = jnp.einsum("bhqd,bhqkd->bhqk", q_c, kg,
                   preferred_element_type=jnp.float32) * scale
    p = jnp.where(rows_c >= 0, jnp.exp(s - lse_c[..., None]), 0.0)
    dp = jnp.einsum("bhqd,bhqkd->bhqk", do_c, vg,
                    preferred_element_type=jnp.float32)
    ds = p * (dp - delta_c[..., None])
    dq = jnp.einsum("bhqk,bhqkd->bhqd", ds.astype(k.dtype), kg,
                    preferred_element_type=jnp.float32) * scale
    dkg = ds[..., None] * q_c[..., None, :].astype(jnp.float32) * scale
    dvg = p[..., None] * do_c[..., None, :].astype(jnp.float32)
    # Empty slots scatter zeros into key 0; GQA groups add into one kv head.
    bi, hi = _heads(rows_c, k.shape[1])
    safe = jnp.maximum(rows_c, 0)
    dk_acc = dk_acc.at[bi, hi, safe].add(dkg)
    dv_acc = dv_acc.at[bi, hi, safe].add(dvg)
    return (dk_acc, dv_acc), dq.astype(q.dtype)

  xs = (_split(q, n_chunks, size, 0), _split(do, n_chunks, size, 0),
        _split(lse, n_chunks, size, jnp.inf), _split(delta, n_chunks, size, 0),
        _split(rows, n_chunks, size, -1))
  zeros = pallas_support.varying_like(jnp.zeros(k.shape, jnp.float32), q, k, v,
                                      do, rows)
  (dk, dv), dq = jax.lax.scan(step, (zeros, zeros), xs)
  return _merge(dq, tq), dk.astype(k.dtype), dv.astype(v.dtype)
