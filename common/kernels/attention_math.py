"""Softmax bookkeeping shared by the sparse-attention references, XLA paths and kernels.

Log-sum-exp convention. Inside the ops (kernels, residuals) a row with no
admissible key stores lse = +inf: the backward recomputes p = exp(s - lse),
and +inf makes that exactly 0 without a branch. The public value returned with
`return_lse=True` is -inf (log of an empty sum), which also composes
correctly with `jnp.logaddexp` when several attention branches are merged.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from common.kernels import relative_positions as rel

# Finite stand-in for -inf in running maxima, so that exp(m_old - m_new) of an
# all-masked prefix is exp(0) (not NaN); masked probabilities are zeroed
# explicitly rather than through this value.
MASK_VALUE = -1e30
EMPTY_ROW_LSE = float("inf")


def public_lse(lse: jax.Array) -> jax.Array:
  """Internal lse (+inf for empty rows) -> returned lse (-inf for empty rows)."""
  return jnp.where(jnp.isinf(lse), -jnp.inf, lse)


def lse_cotangent(dlse: jax.Array, lse: jax.Array) -> jax.Array:
  """Cotangent of the returned lse, zeroed on empty rows (their lse is a constant)."""
  return jnp.where(jnp.isinf(lse), 0.0, dlse.astype(jnp.float32))


def backward_delta(o, do, lse, dlse):
  """FA2's D_i = rowsum(dO * O), minus the lse cotangent (d lse / d s = p)."""
  delta = jnp.sum(o.astype(jnp.float32) * do.astype(jnp.float32), axis=-1)
  return delta - lse_cotangent(dlse, lse)


def masked_softmax(s, mask, axes):
  """Softmax over `axes` of the f32 scores `s` restricted to `mask`.

  Written for clarity and finite gradients (used by the references and the
  XLA paths): a row with no admissible entry gives output 0 and lse +inf.

  Args:
    s: f32 scores.
    mask: bool, broadcastable to s.
    axes: the key axes of s to normalise over.

  Returns:
    (p, lse): normalised probabilities (0 where masked) and the internal lse.
  """
  m = jnp.max(jnp.where(mask, s, MASK_VALUE), axis=axes, keepdims=True)
  # Mask before exp: exp(s - MASK_VALUE) overflows on empty rows, and autodiff
  # through where(mask, inf, 0) would give 0 * inf = NaN gradients.
  e = jnp.exp(jnp.where(mask, s - m, -jnp.inf))
  l = jnp.sum(e, axis=axes, keepdims=True)
  p = e / jnp.where(l > 0, l, 1.0)
  lse = jnp.where(l > 0, m + jnp.log(jnp.where(l > 0, l, 1.0)), EMPTY_ROW_LSE)
  return p, jnp.squeeze(lse, axis=axes)


def online_softmax_update(m_prev, l_prev, acc_prev, s, mask, v, pv_dot, extra=None):
  """One flash-attention step over a key tile; stats have the shape of s's rows.

  Args:
    m_prev, l_prev: running max and sum, shape [rows, 1] or [rows].
    acc_prev: running un-normalised output, [rows, D] f32.
    s: f32 scores [rows, keys] (already scaled).
    mask: bool [rows, keys] or None (all admissible).
    v: [keys, D] values.
    pv_dot: (p, v) -> [rows, D] f32 matmul (backend specific).
    extra: optional p -> [rows, D] f32 added to p @ v (f32 p, masked; e.g. the relative
      value term, which weights per-distance rows by the same probabilities).

  Returns:
    (m, l, acc) after the tile.
  """
  keep = m_prev.ndim == 2
  s_for_max = s if mask is None else jnp.where(mask, s, MASK_VALUE)
  m_cur = jnp.max(s_for_max, axis=1, keepdims=keep)
  m_new = jnp.maximum(m_prev, m_cur)
  m_b = m_new if keep else m_new[:, None]
  p = jnp.exp(s - m_b)
  if mask is not None:
    p = jnp.where(mask, p, 0.0)
  alpha = jnp.exp(m_prev - m_new)
  l_new = alpha * l_prev + jnp.sum(p, axis=1, keepdims=keep)
  alpha_b = alpha if keep else alpha[:, None]
  acc_new = alpha_b * acc_prev + pv_dot(p.astype(v.dtype), v)
  if extra is not None:
    acc_new = acc_new + extra(p)
  return m_new, l_new, acc_new


def finalize(m, l, acc):
  """(o f32, lse internal) from the running stats; empty rows give 0 and +inf."""
  keep = l.ndim == 2
  l_safe = jnp.where(l > 0, l, 1.0)
  o = acc / (l_safe if keep else l_safe[:, None])
  o = jnp.where((l > 0) if keep else (l > 0)[:, None], o, 0.0)
  lse = jnp.where(l > 0, m + jnp.log(l_safe), EMPTY_ROW_LSE)
  return o, lse


def dense_masked_attention(q, k, v, mask, scale, return_lse, *, bucket=None,
                           rel_keys=None, rel_values=None):
  """The references' attention: f32 scores [B, H, Tq, Tk] under `mask`, O(Tq * Tk) memory.

  k, v have q's heads here (the references repeat GQA kv heads). With `bucket` int [B, H, Tq,
  Tk] the Shaw terms of relative_positions.py are added: scale * q . rel_keys[bucket] to the
  scores and sum_k p rel_values[bucket] to the output (tables f32 [Ht, R, D]).

  Returns o in q.dtype, or (o, public lse) if return_lse.
  """
  s = jnp.einsum("bhqd,bhkd->bhqk", q.astype(jnp.float32),
                 k.astype(jnp.float32)) * scale
  if rel_keys is not None:
    s = s + rel.gather(rel.table_scores(q, rel_keys), bucket) * scale
  p, lse = masked_softmax(s, mask, axes=-1)
  o = jnp.einsum("bhqk,bhkd->bhqd", p, v.astype(jnp.float32))
  if rel_values is not None:
    o = o + rel.table_values(rel.bucket_sums(p, bucket, rel_values.shape[1]),
                             rel_values)
  o = o.astype(q.dtype)
  return (o, public_lse(lse)) if return_lse else o
