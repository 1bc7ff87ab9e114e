"""Global multi-head attention with LePE: the stage-4 attention of BiFormer (topks[3] = -2).

Official: rayleizhu/BiFormer@1697bbb models/_common.py `AttentionLePE` [C:L63-111] (and
`Attention` [C:L20-61], the same without LePE, for topk = -1). BiFormer builds it as
`AttentionLePE(dim=dim, side_dwconv=side_dwconv)` [B:L78-79], so whatever the variant:
8 heads, no qkv bias, scale (dim/8)**-0.5 applied **after** q @ k^T, and LePE is a depthwise
conv on the block's normed input x (not on v), added before `proj`.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from common.layers import initializers
from common.layers.conv import Conv2d
from common.layers.linear import Linear

# Official init of every nn.Linear [B:L260-267]: trunc_normal(std=.02) with timm's absolute
# bounds, zero bias. Convs keep torch's default init (the common layers' default).
LINEAR_INIT = dict(kernel_init=initializers.trunc_normal(0.02),
                   bias_init=nnx.initializers.zeros)


def depthwise_conv(dim: int, kernel: int, **kw) -> Conv2d:
  """Depthwise 'same' conv (groups=dim, padding kernel//2): LePE and the conv pos-embed."""
  return Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim,
                kernel_axes=(None, None, None, "embed"), **kw)


class AttentionLePE(nnx.Module):
  """Global MHSA over all H*W tokens plus an optional LePE depthwise conv on the input."""

  def __init__(self, dim: int, *, num_heads: int = 8, qkv_bias: bool = False,
               qk_scale: float | None = None, side_dwconv: int = 5, dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: Any):
    if dim % num_heads:
      raise ValueError(f"dim={dim}: must be divisible by num_heads={num_heads}.")
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.num_heads = num_heads
    self.scale = qk_scale or (dim // num_heads)**-0.5
    self.qkv = Linear(dim, 3 * dim, use_bias=qkv_bias, kernel_axes=("embed", "heads"),
                      **LINEAR_INIT, **kw)
    self.proj = Linear(dim, dim, kernel_axes=("heads", "embed"), **LINEAR_INIT, **kw)
    self.lepe = depthwise_conv(dim, side_dwconv, **kw) if side_dwconv > 0 else None

  def __call__(self, x: jax.Array) -> jax.Array:
    """x: (N, H, W, C) -> (N, H, W, C)."""
    n, h, w, c = x.shape
    m = self.num_heads
    # [Q | K | V] blocks, each head-major: reshape(B, N, 3, heads, hd) [C:L93].
    qkv = self.qkv(x.reshape(n, h * w, c)).reshape(n, h * w, 3, m, c // m)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # (N, m, L, hd)
    logits = jnp.einsum("nmid,nmjd->nmij", q, k) * jnp.asarray(self.scale, q.dtype)
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
    out = jnp.einsum("nmij,nmjd->nimd", probs, v).reshape(n, h * w, c)
    if self.lepe is not None:
      out = out + self.lepe(x).reshape(n, h * w, c)
    return self.proj(out).reshape(n, h, w, c)
