"""The refine multi-head self-attention of STViT (official `Attention`, models/stvit.py L88-121).

It runs over the super tokens of a stage (or over all tokens where stoken_size is 1). Tokens
arrive as (B, N, C). The official softmax(kᵀq, dim=-2) with `out = v @ attn` is the usual
softmax(q kᵀ) over keys in transposed layout, so this module writes it the usual way.

The qkv parameter is stored as (C, 3, heads, head_dim): the official 1x1 conv emits its 3C
channels interleaved per head, [q_h0 k_h0 v_h0 | q_h1 ...] (reshape(B, heads, 3*hd, N) then
chunk, L110). The converter (third_party/stvit) unpacks that layout into these axes.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import dtypes

from common.layers import initializers, keys
from common.layers.dropout import dropout


class RefineAttention(nnx.Module):
  """MHSA with a fused qkv projection and an output projection, both with bias."""

  def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True,
               qk_scale: float | None = None, attn_drop: float = 0.0,
               proj_drop: float = 0.0, dtype: Any = None, param_dtype: Any = jnp.float32,
               rngs: Any):
    if dim % num_heads:
      raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}.")
    self.num_heads = num_heads
    self.head_dim = dim // num_heads
    # `qk_scale or head_dim**-0.5` (L98): a zero qk_scale also falls back to the default.
    self.scale = qk_scale or self.head_dim ** -0.5
    self.attn_drop = attn_drop
    self.proj_drop = proj_drop
    self.dtype = dtype
    # torch 1x1-conv default init (fan_in = dim) for both projections.
    init = initializers.torch_uniform(dim)
    self.qkv_kernel = keys.param(
        init, ("embed", None, "heads", "kv"), rngs, (dim, 3, num_heads, self.head_dim),
        param_dtype)
    self.qkv_bias = (keys.param(
        init, (None, "heads", "kv"), rngs, (3, num_heads, self.head_dim),
        param_dtype) if qkv_bias else None)
    self.proj_kernel = keys.param(
        init, ("heads", "kv", "embed"), rngs, (num_heads, self.head_dim, dim), param_dtype)
    self.proj_bias = keys.param(init, ("embed",), rngs, (dim,), param_dtype)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Maps tokens (B, N, C) to (B, N, C)."""
    qkv_bias = self.qkv_bias[...] if self.qkv_bias is not None else None
    x, wqkv, bqkv, wo, bo = dtypes.promote_dtype(
        (x, self.qkv_kernel[...], qkv_bias, self.proj_kernel[...], self.proj_bias[...]),
        dtype=self.dtype)
    qkv = jnp.einsum("bnc,cthd->tbnhd", x, wqkv)
    if bqkv is not None:
      qkv = qkv + bqkv[:, None, None]
    q, k, v = qkv[0], qkv[1], qkv[2]
    # Scale after the product, as the official (kᵀq) * scale (L112).
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * self.scale
    probs = jax.nn.softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), -1)
    probs = dropout(probs.astype(v.dtype), self.attn_drop, train=train, rngs=rngs)
    out = jnp.einsum("bhqk,bkhd->bqhd", probs, v)
    out = jnp.einsum("bqhd,hdc->bqc", out, wo) + bo
    return dropout(out, self.proj_drop, train=train, rngs=rngs)
