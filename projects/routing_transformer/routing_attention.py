"""Routing heads: balanced top-w per cluster, attention in the sorted windows, scatter back.

Port of TF `clustered_local_attention_helper` (google-research routing_transformer/utils.py) for
1-D causal decoding with shared QK (spec §1.2):

  1. x = LN(q) (no scale, no bias), k = x (share_qk), scores = x . mu  [B,H,n,K]
  2. idx[c] = sort(top_w over positions of scores[..., c])             [B,H,K,w]
     (balanced: every cluster takes exactly w tokens; a token can be in 0, 1 or many)
  3. windows Q' = K' = x[idx], V' = v[idx]; logits = Q'K'^T with no 1/sqrt(d) (LN undid it);
     causal = lower-triangular on the sorted window index, which is true causality because
     the window is sorted by position and queries and keys share the indices.
  4. scatter back: out_i = sum of the window outputs at i / (count_i + 1e-2)   (TF constant)

Two choices of step 3 are config fields (RoutingTransformerConfig.routing_mask_self /
routing_scale_logits; both off by default, i.e. the official TF numerics that the golden tests
pin). With LN'd shared QK and no scale, every token's logit on itself is d, the largest possible,
so an official head tends to attend to itself alone (README, "Routing claim"). lucidrains'
routing-transformer masks the self-match (a query attends to itself only when it has no earlier
key in its window) and divides the logits by sqrt(d):
  mask_self     window mask strictly lower-triangular, except [0, 0] (the first token of a
                window keeps itself, as lucidrains' finite self-mask value gives a row with no
                other key).
  scale_logits  logits * d^-1/2 (the Shaw key term too, as the kernel's `scale`).

Two implementations of step 3, equal up to float rounding (tests/.../test_attention_heads.py),
chosen by impl (config.model.attention_impl; window_attention.runs_official picks the path):
  a kernel impl  common.kernels.block_sparse_attention(impl=impl) over the cluster-sorted
                 sequence [B,H,K*w,d]: block c attends to block c only, scale 1, on the default
                 positions arange(K*w), whose difference inside a block is the rank difference
                 inside the window. That is the official relative "distance" for the Shaw terms
                 (rel_keys / rel_values), and, since a window holds distinct positions sorted
                 ascending (select_windows), causality on ranks is causality on tokens. No
                 attention dropout.
  'official'     window_attention.attend on [B,H,K,w,d]: Shaw relative positions over the
                 window index (as TF: the relative "distance" is the index difference inside
                 the sorted window, not the token distance) and attention dropout.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from common.kernels import block_sparse_attention as bsa
from common.kernels import sparse_indices
from projects.routing_transformer import window_attention

SCATTER_EPS = 1e-2  # TF scatter_cluster_items: / (count + 1e-2)


def select_windows(scores: jax.Array, window: int) -> jax.Array:
  """Top-`window` positions of each cluster, sorted by position: int32 [B, H, K, w]."""
  _, idx = jax.lax.top_k(jnp.swapaxes(scores, -1, -2), window)
  return jnp.sort(idx, axis=-1).astype(jnp.int32)


def gather_windows(x: jax.Array, idx: jax.Array) -> jax.Array:
  """x [B, H, n, d] at idx [B, H, K, w] -> [B, H, K, w, d]."""
  b, h, k, w = idx.shape
  flat = jnp.take_along_axis(x, idx.reshape(b, h, k * w, 1), axis=2)
  return flat.reshape(b, h, k, w, x.shape[-1])


def scatter_windows(o: jax.Array, idx: jax.Array, seq_len: int) -> jax.Array:
  """Window outputs [B, H, K, w, d] -> [B, H, n, d], averaged as TF (÷ count + 1e-2)."""
  b, h, k, w, d = o.shape
  bi = jnp.arange(b)[:, None, None, None]
  hi = jnp.arange(h)[None, :, None, None]
  sums = jnp.zeros((b, h, seq_len, d), jnp.float32).at[bi, hi, idx].add(o.astype(jnp.float32))
  counts = jnp.zeros((b, h, seq_len), jnp.float32).at[bi, hi, idx].add(1.0)
  return (sums / (counts[..., None] + SCATTER_EPS)).astype(o.dtype)


def query_ranks(window: int, mask_self: bool = False) -> np.ndarray:
  """The rank each window member's query compares with the keys' ranks (key rank <= it): its
  own, or with `mask_self` one lower, except rank 0, which has no earlier key and keeps itself.
  The one source of the causal rule of both paths: the windowed mask and the kernel's
  q_positions."""
  rank = np.arange(window)
  return rank - (rank > 0) if mask_self else rank


def window_causal_mask(window: int, mask_self: bool = False) -> np.ndarray:
  """[w, w] bool (query rank, key rank) under `query_ranks`."""
  return query_ranks(window, mask_self)[:, None] >= np.arange(window)[None, :]


def logit_scale(head_dim: int, scale_logits: bool) -> float:
  """1 (official: the LayerNorm stands in for the 1/sqrt(d)), or d^-1/2 with `scale_logits`."""
  return head_dim ** -0.5 if scale_logits else 1.0


def routed_attention(x: jax.Array, v: jax.Array, idx: jax.Array, *, causal: bool = True,
                     impl: str = "auto", rel_keys=None, rel_values=None,
                     max_relative_position: int = 0, dropout=None, mask_self: bool = False,
                     scale_logits: bool = False) -> jax.Array:
  """Attention of the routed windows; x is the layer-normed shared q/k [B, H, n, d].

  idx: [B, H, K, w] windows from `select_windows` (distinct positions, sorted ascending).
  mask_self / scale_logits: the two non-official numerics (module docstring); mask_self needs
  causal=True.
  Returns the scattered output [B, H, n, d].
  """
  x, v = jnp.asarray(x), jnp.asarray(v)
  b, h, n, d = x.shape
  num_clusters, window = idx.shape[2], idx.shape[3]
  if mask_self and not causal:
    raise ValueError("routed_attention(mask_self=True) needs causal=True.")
  scale = logit_scale(d, scale_logits)
  # The kernel masks on positions only, so the self mask is a shift of the query positions by
  # one rank, which also shifts the relative distance: with Shaw terms it takes the windowed path.
  shifted_rel = mask_self and rel_keys is not None
  if not window_attention.runs_official(impl, dropout=dropout is not None,
                                        op="routed_attention", self_masked_relative=shifted_rel):
    xs = gather_windows(x, idx).reshape(b, h, num_clusters * window, d)
    vs = gather_windows(v, idx).reshape(b, h, num_clusters * window, d)
    own_block = sparse_indices.band_indices((0,), b, h, num_clusters, num_clusters)
    window_attention.check_tables(rel_keys, max_relative_position)
    q_positions = None  # the kernel's default, arange: each block's ranks, offset by c * w
    if mask_self:
      ranks = np.arange(num_clusters)[:, None] * window + query_ranks(window, mask_self)
      q_positions = jnp.broadcast_to(jnp.asarray(ranks.reshape(-1), jnp.int32),
                                     (b, h, num_clusters * window))
    o = bsa.block_sparse_attention(xs, xs, vs, own_block, block_q=window, block_k=window,
                                   causal=causal, q_positions=q_positions, rel_keys=rel_keys,
                                   rel_values=rel_values, scale=scale, impl=impl)
    o = o.reshape(b, h, num_clusters, window, d)
  else:
    xw = gather_windows(x, idx)
    vw = gather_windows(v, idx)
    mask = window_causal_mask(window, mask_self) if causal else np.ones((window, window), bool)
    rel_index = None
    if rel_keys is not None:
      ar = np.arange(window)
      rel_index = window_attention.relative_index(ar, ar, max_relative_position)
    o = window_attention.attend(xw * scale, xw, vw, mask, rel_index=rel_index,
                                rel_keys=rel_keys, rel_values=rel_values, dropout=dropout)
  return scatter_windows(o, idx, n)
