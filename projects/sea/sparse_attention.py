"""SEA's sparse attention in jnp: the official dense-mask computation and a row-sparse gather.

  * dense_masked_*: the official reference path (attention.py, `not self.benchmarking`): the
    full q k^T with a [T, T] keep mask. O(T^2) memory; attention_impl='official' (golden tests).
  * gather_row_sparse_attention: each query gathers its K kept keys (padded index lists from
    masks.row_sparse_key_indices) and attends over them, returning the sparse probabilities
    too. SEAAttention computes the context with common.kernels.row_sparse_attention on the
    Pallas impls; this gather only supplies the probabilities that the kernel does not
    return, as a debug intermediate.
  * grouped_list_attention: the XLA (CPU) path. Each query gathers the (head, key) pairs of
    its one list shared by all heads (masks.grouped_key_lists), about H times fewer slots
    than per-head lists padded to what one head could keep, and runs one softmax per head
    over its own pairs.

Rows without any kept key produce zero probabilities and a zero context: the official
masked_fill(partial_attention_mask < -1, 0) after the softmax does exactly that.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp


def masked_softmax(scores: jax.Array, keep: jax.Array) -> jax.Array:
  """softmax over the kept entries of the last axis; rows with nothing kept give 0."""
  row_max = jnp.max(jnp.where(keep, scores, -jnp.inf), axis=-1, keepdims=True)
  row_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(row_max), row_max, 0.0))
  # Mask before exp: a dropped (or padded) entry may exceed the kept maximum, and exp overflow
  # there would turn into inf * 0 = NaN in the backward pass.
  e = jnp.exp(jnp.where(keep, scores - row_max, -jnp.inf))
  denom = jnp.sum(e, axis=-1, keepdims=True)
  return e / jnp.where(denom > 0, denom, 1.0)


def dense_masked_probs(q: jax.Array, k: jax.Array, keep: jax.Array,
                       scale: float = 1.0) -> jax.Array:
  """Reference probabilities: q, k [B, H, T, D], keep bool [B, H, Tq, Tk] -> [B, H, Tq, Tk]."""
  scores = jnp.einsum("bhqd,bhkd->bhqk", q * scale, k)
  return masked_softmax(scores, keep).astype(q.dtype)


def dense_masked_attention(q: jax.Array, k: jax.Array, v: jax.Array, keep: jax.Array,
                           scale: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """Reference: q, k, v [B, H, T, D], keep bool [B, H, Tq, Tk] -> (context, probs [B,H,Tq,Tk])."""
  probs = dense_masked_probs(q, k, keep, scale).astype(v.dtype)
  return jnp.einsum("bhqk,bhkd->bhqd", probs, v), probs


def gather_row_sparse_attention(q: jax.Array, k: jax.Array, v: jax.Array, key_indices: jax.Array,
                                key_valid: jax.Array | None = None,
                                scale: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """Row-sparse attention by gathering each query's keys.

  Args:
    q: [B, H, Tq, D]; k, v: [B, H, Tk, D].
    key_indices: int32 [B, H, Tq, K] keys of each query (any order; padded slots any index).
    key_valid: bool [B, H, Tq, K], False for padded slots (None = all valid).
    scale: multiplies q (SEA's q is pre-scaled, so 1.0).

  Returns:
    (context [B, H, Tq, D], probs [B, H, Tq, K]).
  """
  b, h, tq, kk = key_indices.shape
  flat = key_indices.reshape(b, h, tq * kk, 1)
  k_g = jnp.take_along_axis(k, flat, axis=2).reshape(b, h, tq, kk, k.shape[-1])
  v_g = jnp.take_along_axis(v, flat, axis=2).reshape(b, h, tq, kk, v.shape[-1])
  scores = jnp.einsum("bhqd,bhqkd->bhqk", q * scale, k_g)
  valid = jnp.ones(key_indices.shape, bool) if key_valid is None else key_valid
  probs = masked_softmax(scores, valid).astype(v.dtype)
  return jnp.einsum("bhqk,bhqkd->bhqd", probs, v_g), probs


# Query rows per chunk of grouped_list_attention: bounds the gathered [N, c, L, D] keys and
# values, and (rematerialised in the backward) what autodiff keeps. A few MB, so that a chunk's
# gathered rows are still in cache when its products read them. The SEA layer at T = 4096 (4
# heads of 64, k = 64, T_M = 256; AMD EPYC with 2 MB of L2 a core), chunk sizes compiled in one
# process and alternated: 32 MB 212 ms forward / 614 ms forward+backward, 8 MB 187 / 543,
# 4 MB 186 / 495, 2 MB 194 / 534.
GROUPED_CHUNK_BYTES = 4 * 2**20


def grouped_list_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                           groups: Sequence[tuple[jax.Array, jax.Array, jax.Array]]) -> jax.Array:
  """Per-head softmax attention over lists of (head, key) pairs shared by a query's heads.

  Args:
    q, k, v: [N, H, T, D] (q pre-scaled).
    groups: consecutive groups of query rows, from row 0, each (slot_head, slot_key,
      slot_valid): int32, int32, bool [N, rows, width], the head and key of each pair and
      False on padded slots (masks.grouped_key_lists).

  Returns:
    context [N, H, T, D]; a head with no pair for a query gives zeros there (as the official
    masked_fill after the softmax).
  """
  n, h, t, d = q.shape
  k_rows = k.reshape(n, h * t, d)  # pair (head, key) -> row head * T + key
  v_rows = v.reshape(n, h * t, d)

  @jax.checkpoint
  def chunk(q_c, head_c, key_c, valid_c):  # [N, H, c, D], [N, c, L] x 3
    rows = (head_c * t + key_c).reshape(n, -1, 1)
    k_g = jnp.take_along_axis(k_rows, rows, axis=1).reshape(*head_c.shape, d)
    v_g = jnp.take_along_axis(v_rows, rows, axis=1).reshape(*head_c.shape, d)
    return _pair_attention(q_c, k_g, v_g, head_c, valid_c)

  out, start = [], 0
  for head, key, valid in groups:
    rows, width = head.shape[1:]
    size = max(1, min(rows, GROUPED_CHUNK_BYTES // (n * width * (2 * d + 4 * h + 8) * 4)))
    chunks = -(-rows // size)
    pad = chunks * size - rows

    def split(x, axis, pad=pad, chunks=chunks, size=size):
      x = jnp.pad(x, [(0, pad if a == axis else 0) for a in range(x.ndim)])
      x = x.reshape(x.shape[:axis] + (chunks, size) + x.shape[axis + 1:])
      return jnp.moveaxis(x, axis, 0)

    o = jax.lax.map(lambda c: chunk(*c), (split(q[:, :, start:start + rows], 2),
                                          split(head, 1), split(key, 1), split(valid, 1)))
    out.append(jnp.moveaxis(o, 0, 2).reshape(n, h, chunks * size, d)[:, :, :rows])
    start += rows
  return jnp.concatenate(out, axis=2)


# The products below are written so that XLA:CPU runs each as its fast batched matmul: the
# contraction on the left operand's minor axis, or [L, D] x [H, D]^T. A contraction over the
# pairs axis L of a [.., L, H] or [.., L, D] left operand fell back to XLA:CPU's generic dot
# (~6 GFLOP/s): the einsum "nclh,ncld->nhcd" alone was half of the layer's forward at 4k, and
# autodiff's transposes of the forward products put three more there in the backward. Hence
# the weights are built directly in the [N, c, H, L] layout and the backward is written out.


def _owners(head_c, valid_c, h: int):
  """Which head owns each valid pair: bool [N, c, L, H] and the same as [N, c, H, L]."""
  heads = jnp.arange(h, dtype=jnp.int32)
  mine = (head_c[..., None] == heads) & valid_c[..., None]
  mine_t = (head_c[:, :, None, :] == heads[:, None]) & valid_c[:, :, None, :]
  return mine, mine_t


def _pair_forward(q_c, k_g, v_g, head_c, valid_c):
  """Context [N, H, c, D] and each pair's probability under its head's softmax [N, c, L]."""
  mine, mine_t = _owners(head_c, valid_c, q_c.shape[1])
  # Every head's query against every pair (H x the needed products, but no gather of q).
  scores = jnp.sum(jnp.where(mine, jnp.einsum("nhcd,ncld->nclh", q_c, k_g), 0.0), axis=-1)
  row_max = jnp.max(jnp.where(mine, scores[..., None], -jnp.inf), axis=2)  # [N, c, H]
  row_max = jnp.where(jnp.isfinite(row_max), row_max, 0.0)
  own_max = jnp.take_along_axis(row_max, head_c, axis=-1)
  e = jnp.exp(jnp.where(valid_c, scores - own_max, -jnp.inf))
  denom = jnp.einsum("ncl,nclh->nch", e, mine.astype(e.dtype))
  probs = e / jnp.take_along_axis(jnp.where(denom > 0, denom, 1.0), head_c, axis=-1)
  weights = jnp.where(mine_t, probs[:, :, None, :], 0.0).astype(v_g.dtype)  # [N, c, H, L]
  return jnp.swapaxes(jnp.matmul(weights, v_g), 1, 2), probs


@jax.custom_vjp
def _pair_attention(q_c, k_g, v_g, head_c, valid_c):
  """One chunk's attention over its gathered pairs: q_c [N, H, c, D]; k_g, v_g [N, c, L, D];
  head_c int32 and valid_c bool [N, c, L]. Returns [N, H, c, D]."""
  return _pair_forward(q_c, k_g, v_g, head_c, valid_c)[0]


def _pair_attention_fwd(q_c, k_g, v_g, head_c, valid_c):
  out, probs = _pair_forward(q_c, k_g, v_g, head_c, valid_c)
  return out, (q_c, k_g, v_g, head_c, valid_c, probs)


def _pair_attention_bwd(res, g):
  q_c, k_g, v_g, head_c, valid_c, probs = res
  mine, mine_t = _owners(head_c, valid_c, q_c.shape[1])
  g_t = jnp.swapaxes(g, 1, 2)  # [N, c, H, D]
  d_probs = jnp.sum(jnp.where(mine, jnp.einsum("ncld,nchd->nclh", v_g, g_t), 0.0), axis=-1)
  # Softmax over each head's own pairs: ds = p (dp - sum over the head's pairs of p dp).
  pdp = probs * d_probs
  per_head = jnp.einsum("ncl,nclh->nch", pdp, mine.astype(pdp.dtype))
  d_scores = pdp - probs * jnp.take_along_axis(per_head, head_c, axis=-1)  # 0 off the lists
  dv_g = jnp.matmul(jnp.where(mine, probs[..., None], 0.0).astype(g.dtype), g_t)
  dk_g = jnp.matmul(jnp.where(mine, d_scores[..., None], 0.0).astype(q_c.dtype),
                    jnp.swapaxes(q_c, 1, 2))
  dq_t = jnp.matmul(jnp.where(mine_t, d_scores[:, :, None, :], 0.0).astype(k_g.dtype), k_g)
  return (jnp.swapaxes(dq_t, 1, 2).astype(q_c.dtype), dk_g.astype(k_g.dtype),
          dv_g.astype(v_g.dtype), None, None)


_pair_attention.defvjp(_pair_attention_fwd, _pair_attention_bwd)
