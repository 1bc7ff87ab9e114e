"""The BiFormer block: conv pos-embed, attention (BRA or global) and MLP, NHWC.

Official: rayleizhu/BiFormer@1697bbb models/biformer.py `Block` [B:L54-132] (legacy layout)
and models/biformer_stl.py `BiFormerBlock` (no pos-embed, no layer scale, pre-norm).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from projects.biformer import attention as attention_lib
from projects.biformer import bra as bra_lib
from projects.biformer import layers

Dtype = layers.Dtype


class Block(nnx.Module):
  """x = x + DW3x3(x); x = x + DropPath(Attn(LN(x))); x = x + DropPath(MLP(LN(x))).

  `topk > 0` selects bi-level routing attention, -2 global attention with LePE and -1 global
  attention without it. With `pre_norm=False` the norms follow the residual sums instead
  (post-norm, [B:L122-128]); with layer_scale_init_value > 0 the branches are scaled per
  channel by learnable gamma1 / gamma2.
  """

  def __init__(self, dim: int, *, topk: int, num_heads: int, n_win: int = 7,
               qk_dim: int | None = None, qk_scale: float | None = None,
               mlp_ratio: float = 3.0, side_dwconv: int = 5, before_attn_dwconv: int = 3,
               layer_scale_init_value: float = -1.0, pre_norm: bool = True,
               auto_pad: bool = False, drop_path: float = 0.0,
               attention_impl: str = "gather", dtype: Dtype = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.pos_embed = (layers.depthwise_conv2d(dim, before_attn_dwconv, **kw)
                      if before_attn_dwconv > 0 else None)
    self.norm1 = layers.layer_norm(dim, eps=1e-6, **kw)
    self.routed = topk > 0
    if topk > 0:
      self.attn = bra_lib.BiLevelRoutingAttention(
          dim, num_heads=num_heads, n_win=n_win, topk=topk, qk_dim=qk_dim, qk_scale=qk_scale,
          side_dwconv=side_dwconv, auto_pad=auto_pad, attention_impl=attention_impl, **kw)
    elif topk in (-1, -2):
      # The official constructor passes neither the variant's heads nor qk_scale here
      # [B:L76-79]: 8 heads and (dim/8)**-0.5 always.
      self.attn = attention_lib.AttentionLePE(
          dim, side_dwconv=side_dwconv if topk == -2 else 0, **kw)
    else:
      raise ValueError(f"topk={topk!r}: allowed are k >= 1, -1 or -2.")
    self.norm2 = layers.layer_norm(dim, eps=1e-6, **kw)
    self.mlp = layers.Mlp(dim, int(mlp_ratio * dim), **kw)
    self.drop_path = layers.DropPath(drop_path, rngs=rngs)
    self.pre_norm = pre_norm
    if layer_scale_init_value > 0:
      init = nnx.with_partitioning(
          lambda key, shape, dt: jnp.full(shape, layer_scale_init_value, dt), ("embed",))
      self.gamma1 = nnx.Param(init(rngs.params(), (dim,), param_dtype))
      self.gamma2 = nnx.Param(init(rngs.params(), (dim,), param_dtype))
    else:
      self.gamma1 = self.gamma2 = None

  def _attn(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    if self.routed:
      return self.attn(x)
    return self.attn(x), None

  def _scaled(self, gamma, y):
    return y if gamma is None else gamma[...].astype(y.dtype) * y

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    """x: (N, H, W, C). Returns (x, r_idx or None for global attention)."""
    if self.pos_embed is not None:
      x = x + self.pos_embed(x)
    if self.pre_norm:
      y, r_idx = self._attn(self.norm1(x))
      x = x + self.drop_path(self._scaled(self.gamma1, y))
      x = x + self.drop_path(self._scaled(self.gamma2, self.mlp(self.norm2(x))))
    else:
      y, r_idx = self._attn(x)
      x = self.norm1(x + self.drop_path(self._scaled(self.gamma1, y)))
      x = self.norm2(x + self.drop_path(self._scaled(self.gamma2, self.mlp(x))))
    return x, r_idx
