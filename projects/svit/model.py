"""SViT / STViT (Huang et al., CVPR 2023): Vision Transformer with Super Token Sampling.

A port of the official `STViT` (hhb072/STViT@c9ed9a4 models/stvit.py), NHWC inside:

  stem (4 x [conv3x3 -> GELU -> BN], stride 4)
  -> stage i: depths[i] x block, then PatchMerging (conv3x3 s2 + BN) at the END of stages < last
  -> conv1x1 (projection) -> BN -> swish -> global mean -> Linear

  block: x += DWConv3x3(x); x += gamma1 * STA(LN(x)); x += gamma2 * ConvFFN(BN(x))

Inputs are NHWC images (B, H, W, in_chans) of any size. `train=True` switches BatchNorm to
batch statistics (updating the running ones) and enables dropout/drop-path, which then need
`rngs` with a "dropout" stream.
"""
from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import nnx

from projects.svit import layers
from projects.svit import stoken
from projects.svit.config import STViTConfig


class ConvFFN(nnx.Module):
  """Official `Mlp` (L64-86): 1x1 -> GELU -> drop -> (h + DWConv3x3(h)) -> 1x1 -> drop."""

  def __init__(self, dim: int, hidden: int, *, drop: float = 0.0, dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    self.drop = drop
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.fc1 = layers.Dense(dim, hidden, kernel_axes=("embed", "mlp"), **kw)
    self.dwconv = layers.Conv2d(hidden, hidden, 3, groups=hidden,
                                kernel_axes=(None, None, None, "mlp"), **kw)
    self.fc2 = layers.Dense(hidden, dim, kernel_axes=("mlp", "embed"), **kw)

  def __call__(self, x, *, train=False, rngs=None):
    x = layers.gelu(self.fc1(x))
    x = layers.dropout(x, self.drop, train=train, rngs=rngs)
    x = x + self.dwconv(x)
    x = self.fc2(x)
    return layers.dropout(x, self.drop, train=train, rngs=rngs)


class STViTBlock(nnx.Module):
  """Official `StokenAttentionLayer` (L279-312)."""

  def __init__(self, dim: int, *, n_iter: int, stoken_size: tuple[int, int], num_heads: int,
               mlp_ratio: float, qkv_bias: bool, qk_scale: float | None, drop: float,
               attn_drop: float, drop_path: float, layerscale: bool, init_values: float,
               dtype: Any = None, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.drop_path = drop_path
    # ResDWC: x + DWConv3x3(x); HEAD's form, not the April-2023 diagonal-kernel one.
    self.pos_embed = layers.Conv2d(dim, dim, 3, groups=dim, **kw)
    self.norm1 = layers.LayerNorm(dim, epsilon=1e-6, **kw)
    self.attn = stoken.StokenAttention(
        dim, stoken_size, n_iter=n_iter, num_heads=num_heads, qkv_bias=qkv_bias,
        qk_scale=qk_scale, attn_drop=attn_drop, proj_drop=drop, **kw)
    self.norm2 = layers.BatchNorm(dim, **kw)
    self.mlp = ConvFFN(dim, int(dim * mlp_ratio), drop=drop, **kw)
    if layerscale:
      init = nnx.initializers.constant(init_values)
      self.gamma_1 = layers.param(init, ("embed",), rngs.params(), (dim,), param_dtype)
      self.gamma_2 = layers.param(init, ("embed",), rngs.params(), (dim,), param_dtype)
    else:
      self.gamma_1 = self.gamma_2 = None

  def __call__(self, x, *, train=False, rngs=None):
    x = x + self.pos_embed(x)
    y = self.attn(self.norm1(x), train=train, rngs=rngs)
    if self.gamma_1 is not None:
      y = self.gamma_1[...].astype(y.dtype) * y
    x = x + layers.drop_path(y, self.drop_path, train=train, rngs=rngs)
    y = self.mlp(self.norm2(x, train=train), train=train, rngs=rngs)
    if self.gamma_2 is not None:
      y = self.gamma_2[...].astype(y.dtype) * y
    return x + layers.drop_path(y, self.drop_path, train=train, rngs=rngs)


class ConvBN(nnx.Module):
  """Conv3x3 (bias) followed by BatchNorm, with an optional GELU in between (stem order)."""

  def __init__(self, cin: int, cout: int, *, stride: int, gelu: bool, dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.gelu = gelu
    # Explicit padding 1 (torch), never 'SAME': see layers.py.
    self.conv = layers.Conv2d(cin, cout, 3, stride=stride, padding=1, **kw)
    self.norm = layers.BatchNorm(cout, **kw)

  def __call__(self, x, *, train=False):
    x = self.conv(x)
    if self.gelu:
      x = layers.gelu(x)
    return self.norm(x, train=train)


class Stem(nnx.Module):
  """Official `PatchEmbed` (L349-374): conv -> GELU -> BN (activation BEFORE norm), x4."""

  def __init__(self, in_chans: int, dim: int, *, dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    half = dim // 2
    plan = ((in_chans, half, 2), (half, half, 1), (half, dim, 2), (dim, dim, 1))
    self.layers = nnx.List([ConvBN(i, o, stride=s, gelu=True, **kw) for i, o, s in plan])

  def __call__(self, x, *, train=False):
    for layer in self.layers:
      x = layer(x, train=train)
    return x


class Stage(nnx.Module):
  """Official `BasicLayer` (L314-347): blocks, then PatchMerging unless it is the last."""

  def __init__(self, config: STViTConfig, index: int, *, dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    c = config
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    dim = c.embed_dim[index]
    rates = c.drop_path_rates()[index]
    self.blocks = nnx.List([
        STViTBlock(dim, n_iter=c.n_iter[index], stoken_size=c.stoken_size[index],
                   num_heads=c.num_heads[index], mlp_ratio=c.mlp_ratio, qkv_bias=c.qkv_bias,
                   qk_scale=c.qk_scale, drop=c.drop_rate, attn_drop=c.attn_drop_rate,
                   drop_path=rate, layerscale=c.layerscale[index],
                   init_values=c.init_values, **kw)
        for rate in rates])
    if index < c.num_stages - 1:
      self.downsample = ConvBN(dim, c.embed_dim[index + 1], stride=2, gelu=False, **kw)
    else:
      self.downsample = None

  def __call__(self, x, *, train=False, rngs=None):
    """Returns (blocks output, stage output); they differ only where a PatchMerging runs."""
    for block in self.blocks:
      x = block(x, train=train, rngs=rngs)
    merged = self.downsample(x, train=train) if self.downsample is not None else x
    return x, merged


class STViT(nnx.Module):
  """SViT/STViT classifier and multi-scale backbone.

  Call `model(x)` for logits (B, num_classes), or pooled (B, projection) features when
  num_classes == 0; `model(x, return_stages=True)` for (logits, stages). `stages` is a list
  of NHWC maps, one per stage: with taps="output" the official `layers.{i}` outputs (stages
  before the last are already PatchMerged to the next stage's size); with taps="blocks" the
  last block's output of each stage (embed_dim[i] channels at strides 4, 8, 16, 32), the
  usual pyramid for dense-prediction heads.
  """

  def __init__(self, config: STViTConfig, *, dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    if not isinstance(config, STViTConfig):
      raise ValueError(f"config={type(config).__name__} is invalid: expected an STViTConfig "
                       "(see projects.svit.presets).")
    self.config = config
    c = config
    # One draw from the caller's Rngs; sub-modules take keys from a cheap stream (see
    # layers.KeyStream for why).
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=layers.KeyStream(rngs.params()))
    self.patch_embed = Stem(c.in_chans, c.embed_dim[0], **kw)
    self.layers = nnx.List([Stage(c, i, **kw) for i in range(c.num_stages)])
    self.proj = layers.Dense(c.embed_dim[-1], c.projection, kernel_axes=("embed", "mlp"), **kw)
    self.norm = layers.BatchNorm(c.projection, axis_name="mlp", **kw)
    if c.num_classes > 0:
      # Official init (L441-445): trunc_normal(.02) weight, zero bias for nn.Linear.
      self.head = layers.Dense(c.projection, c.num_classes, kernel_axes=("mlp", "vocab"),
                               kernel_init=layers.trunc_normal(0.02),
                               bias_init=nnx.initializers.zeros, **kw)
    else:
      self.head = None

  def forward_stages(self, x: jax.Array, *, train: bool = False,
                     rngs: nnx.Rngs | None = None,
                     taps: Literal["output", "blocks"] = "output"
                     ) -> tuple[jax.Array, list[jax.Array]]:
    """Runs stem and stages; returns (last map, per-stage maps at `taps`)."""
    if taps not in ("output", "blocks"):
      raise ValueError(f"taps={taps!r} is invalid: expected 'output' or 'blocks'.")
    if x.ndim != 4 or x.shape[-1] != self.config.in_chans:
      raise ValueError(f"x.shape={x.shape} is invalid: expected NHWC (B, H, W, "
                       f"{self.config.in_chans}).")
    x = self.patch_embed(x, train=train)
    x = layers.dropout(x, self.config.drop_rate, train=train, rngs=rngs)
    stages = []
    for stage in self.layers:
      blocks_out, x = stage(x, train=train, rngs=rngs)
      stages.append(x if taps == "output" else blocks_out)
    return x, stages

  def forward_head(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """proj -> BN -> swish -> global mean -> head, from the last stage map."""
    x = self.norm(self.proj(x), train=train)
    x = jax.nn.silu(x)  # MemoryEfficientSwish: x * sigmoid(x), same gradient.
    x = jnp.mean(x, axis=(1, 2))
    return self.head(x) if self.head is not None else x

  def __call__(self, x: jax.Array, *, train: bool = False, rngs: nnx.Rngs | None = None,
               return_stages: bool = False, taps: Literal["output", "blocks"] = "output"):
    last, stages = self.forward_stages(x, train=train, rngs=rngs, taps=taps)
    logits = self.forward_head(last, train=train)
    return (logits, stages) if return_stages else logits
