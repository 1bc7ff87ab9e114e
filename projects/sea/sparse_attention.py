"""SEA's sparse attention in jnp: the official dense-mask computation and a row-sparse gather.

  * dense_masked_*: the official reference path (attention.py, `not self.benchmarking`): the
    full q k^T with a [T, T] keep mask. O(T^2) memory; attention_impl='official' (golden tests).
  * gather_row_sparse_attention: each query gathers its K kept keys (padded index lists from
    masks.row_sparse_key_indices) and attends over them, returning the sparse probabilities
    too. SEAAttention computes the context with common.kernels.row_sparse_attention (every
    other attention_impl); this gather only supplies the probabilities that the kernel does
    not return, as a debug intermediate.

Rows without any kept key produce zero probabilities and a zero context: the official
masked_fill(partial_attention_mask < -1, 0) after the softmax does exactly that.
"""
from __future__ import annotations

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
