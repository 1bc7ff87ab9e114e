"""Dense softmax attention inside small windows, with optional Shaw relative positions.

The routing and local heads both reduce to "attend densely inside a window under a mask". This
module is that inner op written directly in jnp, as T2T's `dot_product_attention(_relative)`:

  logits = q k^T + q . R_k[rel]          (Shaw et al. 2018; R_k [2M+1, d] shared by all heads)
  p      = dropout(softmax(logits + bias))
  out    = p v + sum_k p . R_v[rel]

It is attention_impl 'official', and the path 'auto' falls back to when attention dropout is on
(common.kernels.block_sparse_attention has no dropout); `runs_official` decides. The Shaw terms
themselves run inside the kernel (its rel_keys / rel_values), equal to this path up to float
rounding (tests/projects/routing_transformer/test_relative_kernel.py).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from projects.routing_transformer.config import OFFICIAL

NEG_INF = -1e9  # T2T's attention bias constant


def runs_official(impl: str, *, dropout: bool, op: str,
                  self_masked_relative: bool = False) -> bool:
  """Whether attention_impl `impl` runs this windowed path (else the kernel, with impl=`impl`).

  'official' always does; 'auto' does when the head needs what
  common.kernels.block_sparse_attention cannot express: attention dropout (train mode with
  attention_dropout > 0), or a routing head's self mask together with Shaw terms
  (`self_masked_relative`; routing_attention.routed_attention). An explicit kernel impl then
  is an error. Relative positions alone run in the kernel.
  """
  if impl == OFFICIAL:
    return True
  needs = ("attention dropout" if dropout else
           "a self-masked routing head with relative positions" if self_masked_relative else None)
  if needs:
    if impl == "auto":
      return True
    raise ValueError(f"{op}(impl={impl!r}) does not support {needs}; use impl='auto' or "
                     "'official'.")
  return False


def check_tables(rel_keys, max_relative_position: int) -> None:
  """The kernel reads the max distance off the tables (2M + 1 rows); they must agree."""
  if rel_keys is not None and rel_keys.shape[0] != 2 * max_relative_position + 1:
    raise ValueError(f"relative tables have {rel_keys.shape[0]} rows; max_relative_position="
                     f"{max_relative_position} needs {2 * max_relative_position + 1}.")


def relative_index(q_pos: np.ndarray, k_pos: np.ndarray, max_relative_position: int) -> np.ndarray:
  """Index into the [2M+1] table of clip(k - q, -M, M) (T2T _generate_relative_positions_matrix)."""
  dist = np.asarray(k_pos)[None, :] - np.asarray(q_pos)[:, None]
  return (np.clip(dist, -max_relative_position, max_relative_position)
          + max_relative_position).astype(np.int32)


def attend(q, k, v, mask, *, rel_index=None, rel_keys=None, rel_values=None,
           dropout=None):
  """Softmax attention over the last-but-one axis of k/v.

  Args:
    q: [..., Q, d] (already scaled as the caller wants; no scaling here).
    k, v: [..., K, d].
    mask: bool, broadcastable to [..., Q, K]; False entries get the -1e9 bias.
    rel_index: optional int [Q, K] into the relative tables (static per window shape).
    rel_keys, rel_values: [2M+1, d] Shaw tables (both or neither).
    dropout: optional callable on the attention probabilities (train mode only).

  Returns:
    [..., Q, d] in q's dtype; softmax and accumulation in float32.
  """
  f32 = jnp.float32
  logits = jnp.einsum("...qd,...kd->...qk", q.astype(f32), k.astype(f32))
  if rel_keys is not None:
    logits = logits + _gather_relative(
        jnp.einsum("...qd,rd->...qr", q.astype(f32), jnp.asarray(rel_keys, f32)), rel_index)
  logits = jnp.where(mask, logits, NEG_INF)
  p = jax.nn.softmax(logits, axis=-1)
  if dropout is not None:
    p = dropout(p)
  out = jnp.einsum("...qk,...kd->...qd", p, v.astype(f32))
  if rel_values is not None:
    out = out + jnp.einsum("...qr,rd->...qd", _bucket_relative(p, rel_index, rel_values.shape[0]),
                           jnp.asarray(rel_values, f32))
  return out.astype(q.dtype)


# T2T gathers the tables into [Q, K, d] (`_generate_relative_positions_embeddings`); going
# through [..., Q, 2M+1] instead gives the same sums without a Q*K*d array, which matters for
# long local windows and the dense baseline.
def _gather_relative(q_table: jax.Array, rel_index: np.ndarray) -> jax.Array:
  """q_table [..., Q, R] at rel_index [Q, K] -> [..., Q, K]."""
  idx = jnp.broadcast_to(jnp.asarray(rel_index), q_table.shape[:-1] + (rel_index.shape[1],))
  # In range by construction; "promise" also spares XLA constant-folding bounds checks of
  # [Q, K] index constants (35 s at Q = K = 2048 on CPU).
  return jnp.take_along_axis(q_table, idx, axis=-1, mode="promise_in_bounds")


def _bucket_relative(p: jax.Array, rel_index: np.ndarray, num_buckets: int) -> jax.Array:
  """Sums p [..., Q, K] into relative buckets: [..., Q, R] (the transpose of the gather)."""
  rows = np.broadcast_to(np.arange(rel_index.shape[0])[:, None], rel_index.shape)
  out = jnp.zeros(p.shape[:-1] + (num_buckets,), p.dtype)
  return out.at[..., rows, rel_index].add(p, mode="promise_in_bounds")
