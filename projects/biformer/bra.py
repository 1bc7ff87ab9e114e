"""Bi-Level Routing Attention (BRA), the legacy form the released BiFormer-T/S/B use.

Official: rayleizhu/BiFormer@1697bbb ops/bra_legacy.py `BiLevelRoutingAttention.forward`
([BRA:L203-284] in shared/specs/vision.md §2.3). The layout here differs from the official one
but the maths is the same:

* tokens are ordered **region-major**: region r = j*n_win + i (row-major on the region grid)
  occupies the contiguous token block [r*w2, (r+1)*w2) with pixels row-major inside it. Every
  region is then one block of a block-sparse attention, and the router's indices are the
  kv block indices of `common.kernels.block_sparse_attention`;
* the routed attention is one function, `routed_attention`, with an `impl` switch
  (`config.model.attention_impl`): "official" gathers the top-k regions' k/v per query region
  (as the official KVGather) and runs a dense softmax over them; any other value is passed
  unchanged to the shared kernel `common.kernels.block_sparse_attention`.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from common.layers.attention import chunked_attention
from common.layers.linear import Linear
from projects.biformer.attention import LINEAR_INIT, depthwise_conv

# How BRA picks each region's key regions: the official top-k router, or the region itself.
ROUTINGS = ("topk", "local")


def to_regions(x: jax.Array, n_win: int) -> jax.Array:
  """(N, H, W, C) -> (N, n_win**2, (H/n_win)*(W/n_win), C), region-major, row-major inside.

  Same order as `rearrange(x, "n (j h) (i w) c -> n (j i) (h w) c")` [BRA:L229, L240].
  """
  n, h, w, c = x.shape
  wh, ww = h // n_win, w // n_win
  x = x.reshape(n, n_win, wh, n_win, ww, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, n_win * n_win, wh * ww, c)


def from_regions(x: jax.Array, n_win: int, h: int, w: int) -> jax.Array:
  """Inverse of `to_regions`: (N, n_win**2, wh*ww, C) -> (N, H, W, C) [BRA:L269-270]."""
  n, _, _, c = x.shape
  wh, ww = h // n_win, w // n_win
  x = x.reshape(n, n_win, n_win, wh, ww, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h, w, c)


def topk_routing(q_win: jax.Array, k_win: jax.Array, topk: int, scale: float) -> jax.Array:
  """Region-level routing: indices of the top-k regions for every query region.

  Official `TopkRouting` with param_routing/diff_routing/soft_routing off [BRA:L44-58]: the
  inputs are detached, the affinity is (q_win*scale) @ k_win^T, and only the index set is
  used (r_weight is computed there but unused, mul_weight='none'). The scale does not change
  the top-k set but is kept so the logits match the official ones. Routing runs in float32
  whatever the compute dtype: a reduced-precision affinity would flip near-tied selections.

  Args:
    q_win, k_win: (N, R, C_qk) region means.
    topk: number of routed regions.
    scale: affinity scale.

  Returns:
    int32 (N, R, topk), ordered by descending affinity. Exact ties go to the lower region id
    (the `jax.lax.top_k` rule, which the golden data canonicalises to).
  """
  q_win = jax.lax.stop_gradient(q_win).astype(jnp.float32)
  k_win = jax.lax.stop_gradient(k_win).astype(jnp.float32)
  logits = jnp.einsum("nrc,nsc->nrs", q_win * scale, k_win)
  _, idx = jax.lax.top_k(logits, topk)
  return idx.astype(jnp.int32)


def _gather_blocks(x: jax.Array, idx: jax.Array, block: int) -> jax.Array:
  """x (B,H,T,D), idx (B,H,Q,S) -> (B,H,Q,S*block,D): the selected kv blocks per query block."""
  b, h, t, d = x.shape
  blocks = x.reshape(b, h, t // block, block, d)
  # vmap over batch and head so the gather indexes only the block axis, like the official
  # torch.gather over an expanded (n, p^2, p^2, w^2, c) view [BRA:L81-84].
  sel = jax.vmap(jax.vmap(lambda xb, ib: xb[ib]))(blocks, idx)  # (B,H,Q,S,block,D)
  q, s = idx.shape[2], idx.shape[3]
  return sel.reshape(b, h, q, s * block, d)


def routed_attention_gather(q: jax.Array, k: jax.Array, v: jax.Array,
                            kv_block_indices: jax.Array, *, block_q: int, block_k: int,
                            scale: float) -> jax.Array:
  """Pure-jnp block-sparse attention: gather the routed kv blocks, dense softmax over them.

  Shapes as `routed_attention`. Memory is O(Tq * n_sel * block_k) for the gathered k/v (the
  official code duplicates kv the same way, [BI#21]).
  """
  b, h, tq, d = q.shape
  k_sel = _gather_blocks(k, kv_block_indices, block_k)  # (B,H,Q,S*bk,D)
  v_sel = _gather_blocks(v, kv_block_indices, block_k)  # (B,H,Q,S*bk,Dv)
  qb = q.reshape(b, h, tq // block_q, block_q, d)
  # The official code scales q before the product [BRA:L266].
  logits = jnp.einsum("bhqid,bhqjd->bhqij", qb * jnp.asarray(scale, q.dtype), k_sel)
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
  out = jnp.einsum("bhqij,bhqjd->bhqid", probs, v_sel)
  return out.reshape(b, h, tq, v.shape[-1])


def routed_attention(q: jax.Array, k: jax.Array, v: jax.Array, kv_block_indices: jax.Array,
                     *, block_q: int, block_k: int, scale: float,
                     impl: str = "official") -> jax.Array:
  """Attention of every query block over its routed key/value blocks (no mask, no causality).

  The signature mirrors `common.kernels.block_sparse_attention.block_sparse_attention`, so the
  shared kernel is a drop-in replacement.

  Args:
    q: (B, H, Tq, D), region-major tokens (query block i = region i).
    k: (B, H, Tk, D).
    v: (B, H, Tk, Dv).
    kv_block_indices: int32 (B, H, Tq // block_q, n_sel), the key blocks each query block
      attends to (the router's r_idx, repeated over heads).
    block_q, block_k: tokens per query / key block (both the region size in BRA).
    scale: logit scale.
    impl: "official" (the official computation in pure jnp: gather the routed blocks, dense
      softmax over them) or an `impl` of the shared kernel
      `common.kernels.block_sparse_attention` ("auto", "xla", "reference", "pallas_tpu",
      "pallas_gpu", "interpret", ...), passed to it unchanged; the kernel needs Dv == D.

  Returns:
    (B, H, Tq, Dv).
  """
  if q.shape[2] % block_q or k.shape[2] % block_k:
    raise ValueError(f"token counts Tq={q.shape[2]}, Tk={k.shape[2]} must be multiples of "
                     f"block_q={block_q}, block_k={block_k}.")
  if impl == "official":
    return routed_attention_gather(q, k, v, kv_block_indices, block_q=block_q,
                                   block_k=block_k, scale=scale)
  # Imported lazily: the kernel package is not needed by the official path.
  from common.kernels import block_sparse_attention as bsa  # pylint: disable=g-import-not-at-top
  return bsa.block_sparse_attention(q, k, v, kv_block_indices, block_q=block_q,
                                    block_k=block_k, causal=False, scale=scale, impl=impl)


class BiLevelRoutingAttention(nnx.Module):
  """Legacy BRA on NHWC maps, kv_downsample_mode='identity', param_attention='qkvo'.

  Quirks kept from the official code:
  * the scale is qk_dim**-0.5 (the full qk width, not the head width) [BRA:L129];
  * qkv is one Linear(C -> qk + qk + C) split [q | k | v] [BRA:L100-103];
  * LePE is a depthwise conv on **v** (as an image), added before `wo` [BRA:L248, L272];
  * auto_pad zero-pads the (normed) input at the bottom/right **before** qkv, so padded
    tokens carry the qkv bias, take part unmasked in region means, routing, attention and
    LePE; the output is cropped after `wo` [BRA:L212-221, L278-279].

  `routing="local"` (not official; the token-mixer ablation's local-window row) replaces the
  router by the identity: every region attends to itself only (Swin's windows, unshifted),
  with the same projections and LePE. With topk = n_win**2 every region reads every region:
  that is global attention, computed as such (`common.layers.attention.chunked_attention`:
  the same values as gathering all regions, up to rounding) instead of copying k and v
  n_win**2 times.
  """

  def __init__(self, dim: int, *, num_heads: int, n_win: int, topk: int,
               qk_dim: int | None = None, qk_scale: float | None = None,
               side_dwconv: int = 5, auto_pad: bool = False, attention_impl: str = "official",
               routing: str = "topk", dtype: Any = None, param_dtype: Any = jnp.float32,
               rngs: Any):
    if routing not in ROUTINGS:
      raise ValueError(f"routing={routing!r}: allowed are {ROUTINGS}.")
    if routing == "local" and topk != 1:
      raise ValueError(f"routing='local' reads one region (its own), so topk must be 1, not "
                       f"{topk}.")
    self.dim = dim
    self.qk_dim = qk_dim or dim
    if self.qk_dim % num_heads or dim % num_heads:
      raise ValueError(f"num_heads={num_heads} must divide qk_dim={self.qk_dim} and "
                       f"dim={dim}.")
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.num_heads = num_heads
    self.n_win = n_win
    self.topk = topk
    self.routing = routing
    self.scale = qk_scale or self.qk_dim**-0.5
    self.auto_pad = auto_pad
    self.attention_impl = attention_impl
    self.qkv = Linear(dim, 2 * self.qk_dim + dim, kernel_axes=("embed", "heads"),
                      **LINEAR_INIT, **kw)
    self.wo = Linear(dim, dim, kernel_axes=("heads", "embed"), **LINEAR_INIT, **kw)
    self.lepe = depthwise_conv(dim, side_dwconv, **kw) if side_dwconv > 0 else None

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x: (N, H, W, C). Returns (out (N, H, W, C), r_idx int32 (N, n_win**2, topk))."""
    n, h_in, w_in, _ = x.shape
    s = self.n_win
    if self.auto_pad:
      pad_b, pad_r = (-h_in) % s, (-w_in) % s
      x = jnp.pad(x, ((0, 0), (0, pad_b), (0, pad_r), (0, 0)))
    elif h_in % s or w_in % s:
      raise ValueError(f"BRA input {h_in}x{w_in}: height and width must be divisible by "
                       f"n_win={s} (or set auto_pad=True).")
    h, w = x.shape[1], x.shape[2]
    if h < s or w < s:
      raise ValueError(f"BRA input {h_in}x{w_in}: needs at least n_win={s} pixels per side.")
    w2 = (h // s) * (w // s)
    m, qk = self.num_heads, self.qk_dim

    # qkv is pointwise, so projecting before partitioning equals the official order.
    qkv = self.qkv(x)
    q, k, v = qkv[..., :qk], qkv[..., qk:2 * qk], qkv[..., 2 * qk:]
    lepe = self.lepe(v) if self.lepe is not None else jnp.zeros_like(v)

    q_reg, k_reg, v_reg = (to_regions(t, s) for t in (q, k, v))  # (N, R, w2, c)
    if self.routing == "local":
      r_idx = jnp.broadcast_to(jnp.arange(s * s, dtype=jnp.int32)[None, :, None], (n, s * s, 1))
    else:
      r_idx = topk_routing(q_reg.mean(axis=2), k_reg.mean(axis=2), self.topk, self.scale)

    def heads(t):  # (N, R, w2, m*c) -> (N, m, R*w2, c); channels are head-major [BRA:L261]
      return t.reshape(n, s * s * w2, m, -1).transpose(0, 2, 1, 3)

    if self.topk == s * s and self.attention_impl == "official":
      # Every region reads every region: plain global attention, in query chunks.
      tokens = lambda t: t.reshape(n, s * s * w2, m, -1)  # noqa: E731  [N, L, m, c]
      out = chunked_attention(tokens(q_reg), tokens(k_reg), tokens(v_reg), scale=self.scale)
    else:
      idx = jnp.broadcast_to(r_idx[:, None], (n, m, s * s, self.topk))
      out = routed_attention(heads(q_reg), heads(k_reg), heads(v_reg), idx, block_q=w2,
                             block_k=w2, scale=self.scale, impl=self.attention_impl)
      out = out.transpose(0, 2, 1, 3)
    out = out.reshape(n, s * s, w2, self.dim)
    out = self.wo(from_regions(out, s, h, w) + lepe)
    return out[:, :h_in, :w_in], r_idx
