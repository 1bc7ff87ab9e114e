"""The BiFormer block: conv pos-embed, attention (BRA or global) and MLP, NHWC.

Official: rayleizhu/BiFormer@1697bbb models/biformer.py `Block` [B:L54-132] (legacy layout)
and models/biformer_stl.py `BiFormerBlock` (no pos-embed, no layer scale, pre-norm).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from common.layers import keys, spatial_mixers
from common.layers.dropout import drop_path
from common.layers.mlp import Mlp
from common.layers.norms import LayerNorm
from projects.biformer import attention as attention_lib
from projects.biformer import bra as bra_lib
from projects.biformer import config as config_lib


class Block(nnx.Module):
  """x = x + DW3x3(x); x = x + DropPath(Attn(LN(x))); x = x + DropPath(MLP(LN(x))).

  `topk > 0` selects bi-level routing attention, -2 global attention with LePE and -1 global
  attention without it. With `pre_norm=False` the norms follow the residual sums instead
  (post-norm, [B:L122-128]); with layer_scale_init_value > 0 the branches are scaled per
  channel by learnable gamma1 / gamma2.

  `mixer` (config_lib.BUILTIN_MIXERS or a spatial mixer's name; the token-mixer ablation)
  replaces BRA in a `topk > 0` block: 'local' is BRA reading its own region only; any other
  name is a common.layers.spatial_mixers mixer over the same n_win x n_win regions, plus a
  LePE of the same kernel (a side_dwconv depthwise conv of the block's normed input, added to
  the mixer's output; BRA's LePE reads v instead).
  """

  def __init__(self, dim: int, *, topk: int, num_heads: int, n_win: int = 7,
               qk_dim: int | None = None, qk_scale: float | None = None,
               mlp_ratio: float = 3.0, side_dwconv: int = 5, before_attn_dwconv: int = 3,
               layer_scale_init_value: float = -1.0, pre_norm: bool = True,
               auto_pad: bool = False, drop_path: float = 0.0,
               attention_impl: str = "official", mixer: str = "bra", dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: Any):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.pos_embed = (attention_lib.depthwise_conv(dim, before_attn_dwconv, **kw)
                      if before_attn_dwconv > 0 else None)
    self.norm1 = LayerNorm(dim, epsilon=1e-6, **kw)
    self.routed = topk > 0 and mixer in config_lib.BUILTIN_MIXERS
    lepe = None
    if self.routed:
      local = mixer == "local"
      self.attn = bra_lib.BiLevelRoutingAttention(
          dim, num_heads=num_heads, n_win=n_win, topk=1 if local else topk, qk_dim=qk_dim,
          qk_scale=qk_scale, side_dwconv=side_dwconv, auto_pad=auto_pad,
          attention_impl=attention_impl, routing="local" if local else "topk", **kw)
    elif topk > 0:
      self.attn = spatial_mixers.build(
          mixer, spatial_mixers.SpatialSpec(dim, num_heads, n_win, dtype, param_dtype), rngs)
      lepe = attention_lib.depthwise_conv(dim, side_dwconv, **kw) if side_dwconv > 0 else None
    elif topk in (-1, -2):
      # The official constructor passes neither the variant's heads nor qk_scale here
      # [B:L76-79]: 8 heads and (dim/8)**-0.5 always.
      self.attn = attention_lib.AttentionLePE(
          dim, side_dwconv=side_dwconv if topk == -2 else 0, **kw)
    else:
      raise ValueError(f"topk={topk!r}: allowed are k >= 1, -1 or -2.")
    self.lepe = lepe
    self.norm2 = LayerNorm(dim, epsilon=1e-6, **kw)
    # Linear -> exact (erf) GELU -> Linear; the official `drop_rate` never reaches it.
    self.mlp = Mlp(dim, int(mlp_ratio * dim), activation="gelu",
                   layer_names=("fc1", "fc1_gate", "fc2"),
                   kernel_init=attention_lib.LINEAR_INIT["kernel_init"], sow_stats=False, **kw)
    self.drop_path = drop_path
    self.pre_norm = pre_norm
    if layer_scale_init_value > 0:
      init = nnx.initializers.constant(layer_scale_init_value)
      self.gamma1 = keys.param(init, ("embed",), None, (dim,), param_dtype)
      self.gamma2 = keys.param(init, ("embed",), None, (dim,), param_dtype)
    else:
      self.gamma1 = self.gamma2 = None

  def _attn(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    if self.routed:
      return self.attn(x)
    if self.lepe is not None:
      return self.attn(x) + self.lepe(x), None
    return self.attn(x), None

  def _branch(self, gamma, y, train, rngs):
    """Layer scale, then drop path, of a residual branch."""
    y = y if gamma is None else gamma[...].astype(y.dtype) * y
    return drop_path(y, self.drop_path, train=train, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False, rngs: nnx.Rngs | None = None
               ) -> tuple[jax.Array, jax.Array | None]:
    """x: (N, H, W, C). Returns (x, r_idx or None for global attention)."""
    if self.pos_embed is not None:
      x = x + self.pos_embed(x)
    if self.pre_norm:
      y, r_idx = self._attn(self.norm1(x))
      x = x + self._branch(self.gamma1, y, train, rngs)
      x = x + self._branch(self.gamma2, self.mlp(self.norm2(x)), train, rngs)
    else:
      y, r_idx = self._attn(x)
      x = self.norm1(x + self._branch(self.gamma1, y, train, rngs))
      x = self.norm2(x + self._branch(self.gamma2, self.mlp(x), train, rngs))
    return x, r_idx
