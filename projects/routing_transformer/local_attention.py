"""Local heads: causal attention within a query block plus `memory_flange` earlier positions.

TF `local_attention_nd` for 1-D decoding (spec §1.2 "Local heads"): queries in blocks of
`block` (query_shape, 256 in the paper sets); each block attends to the `flange // block`
previous blocks (positions before 0 are padding, bias -1e9) and causally to its own block.
q arrives scaled by d^-0.5 (not normalised), k is the head's own key (share_qk only concerns
the routing heads).

impl (config.model.attention_impl; window_attention.runs_official picks the path):
  a kernel impl  common.kernels.block_sparse_attention(impl=impl) with kv blocks [i - p, ..., i]
                 (negative -> -1, skipped), causal on the default positions, scale 1; Shaw
                 relative positions as the kernel's rel_keys / rel_values on those positions,
                 i.e. the true token distance clipped to ±max_relative_position (the tables have
                 2 * max_relative_position + 1 rows). No attention dropout.
  'official'     window_attention.attend on [B,H,nb,block,(p+1)*block] memory windows; Shaw
                 relative positions by the true token distance (T2T: the query block is the
                 last `block` positions of its memory block), clipped to ±max_relative_position.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from common.kernels import block_sparse_attention as bsa
from common.kernels import sparse_indices
from projects.routing_transformer import window_attention
from projects.routing_transformer.config import check_blocks


def local_attention(q, k, v, *, block: int, flange: int, impl: str = "auto", rel_keys=None,
                    rel_values=None, max_relative_position: int = 0, dropout=None):
  """q, k, v [B, H, n, d] -> [B, H, n, d]; causal block-local attention."""
  q, k, v = jnp.asarray(q), jnp.asarray(k), jnp.asarray(v)
  b, h, n, d = q.shape
  check_blocks(n, block, flange)
  prev = flange // block
  nb = n // block
  if not window_attention.runs_official(impl, dropout=dropout is not None,
                                        op="local_attention"):
    idx = sparse_indices.band_indices(sparse_indices.causal_window(prev + 1), b, h, nb, nb)
    window_attention.check_tables(rel_keys, max_relative_position)
    return bsa.block_sparse_attention(q, k, v, idx, block_q=block, block_k=block, causal=True,
                                      rel_keys=rel_keys, rel_values=rel_values, scale=1.0,
                                      impl=impl)
  qb = q.reshape(b, h, nb, block, d)

  def memory(x):
    xb = x.reshape(b, h, nb, block, d)
    xp = jnp.pad(xb, ((0, 0), (0, 0), (prev, 0), (0, 0), (0, 0)))
    return jnp.concatenate([xp[:, :, j:j + nb] for j in range(prev + 1)], axis=3)

  km, vm = memory(k), memory(v)
  q_local = np.arange(block) + prev * block     # query positions inside the memory window
  k_local = np.arange((prev + 1) * block)
  causal = k_local[None, :] <= q_local[:, None]
  # Memory slots before position 0 are padding: key position i*block - prev*block + u < 0.
  key_pos = np.arange(nb)[:, None] * block - prev * block + k_local[None, :]
  mask = causal[None, :, :] & (key_pos >= 0)[:, None, :]   # [nb, block, (p+1)*block]
  rel_index = None
  if rel_keys is not None:
    rel_index = window_attention.relative_index(q_local, k_local, max_relative_position)
  o = window_attention.attend(qb, km, vm, mask, rel_index=rel_index, rel_keys=rel_keys,
                              rel_values=rel_values, dropout=dropout)
  return o.reshape(b, h, n, d)
