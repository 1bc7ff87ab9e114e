"""SViT / STViT (Huang et al., CVPR 2023): Vision Transformer with Super Token Sampling.

A port of the official `STViT` (hhb072/STViT@c9ed9a4 models/stvit.py), NHWC inside:

  stem (4 x [conv3x3 -> GELU -> BN], stride 4)
  -> stage i: depths[i] x block, then PatchMerging (conv3x3 s2 + BN) at the END of stages < last
  -> conv1x1 (projection) -> BN -> swish -> global mean -> Linear

  block: x += DWConv3x3(x); x += gamma1 * STA(LN(x)); x += gamma2 * ConvFFN(BN(x))

Inputs are NHWC images (B, H, W, in_chans) of any size. `train=True` switches BatchNorm to
batch statistics (updating the running ones) and enables dropout/drop-path, which then need
`rngs` with a "dropout" stream. Convolutions, norms and dropout are common.layers' torch-numerics
versions; convolutions take torch's explicit symmetric padding (k // 2), never 'SAME'.
`config.remat_policy` rematerialises each block; `config.dtype` / `config.param_dtype` are the
compute and parameter dtypes.
"""
from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import nnx

from common.layers import activations, initializers, keys, remat
from common.layers.conv import Conv2d, ConvBN
from common.layers.dropout import drop_path, dropout
from common.layers.linear import Linear
from common.layers.norms import BatchNorm, LayerNorm
from projects.svit import stoken
from projects.svit.config import STViTConfig


class ConvFFN(nnx.Module):
  """Official `Mlp` (L64-86): 1x1 -> GELU -> drop -> (h + DWConv3x3(h)) -> 1x1 -> drop."""

  def __init__(self, dim: int, hidden: int, *, drop: float = 0.0, dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: Any):
    self.drop = drop
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    # 1x1 convs act on the channel axis: Linear layers on NHWC.
    self.fc1 = Linear(dim, hidden, kernel_axes=("embed", "mlp"), **kw)
    self.dwconv = Conv2d(hidden, hidden, 3, padding=1, groups=hidden,
                         kernel_axes=(None, None, None, "mlp"), **kw)
    self.fc2 = Linear(hidden, dim, kernel_axes=("mlp", "embed"), **kw)

  def __call__(self, x, *, train=False, rngs=None):
    x = activations.gelu(self.fc1(x))
    x = dropout(x, self.drop, train=train, rngs=rngs)
    x = x + self.dwconv(x)
    x = self.fc2(x)
    return dropout(x, self.drop, train=train, rngs=rngs)


class STViTBlock(nnx.Module):
  """Official `StokenAttentionLayer` (L279-312)."""

  def __init__(self, dim: int, *, n_iter: int, stoken_size: tuple[int, int], num_heads: int,
               mlp_ratio: float, qkv_bias: bool, qk_scale: float | None, drop: float,
               attn_drop: float, drop_path: float, layerscale: bool, init_values: float,
               dtype: Any = None, param_dtype: Any = jnp.float32, rngs: Any):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.drop_path = drop_path
    # ResDWC: x + DWConv3x3(x); HEAD's form, not the April-2023 diagonal-kernel one.
    self.pos_embed = Conv2d(dim, dim, 3, padding=1, groups=dim,
                            kernel_axes=(None, None, None, "embed"), **kw)
    self.norm1 = LayerNorm(dim, epsilon=1e-6, **kw)
    self.attn = stoken.StokenAttention(
        dim, stoken_size, n_iter=n_iter, num_heads=num_heads, qkv_bias=qkv_bias,
        qk_scale=qk_scale, attn_drop=attn_drop, proj_drop=drop, **kw)
    self.norm2 = BatchNorm(dim, **kw)
    self.mlp = ConvFFN(dim, int(dim * mlp_ratio), drop=drop, **kw)
    if layerscale:
      init = nnx.initializers.constant(init_values)
      self.gamma_1 = keys.param(init, ("embed",), None, (dim,), param_dtype)
      self.gamma_2 = keys.param(init, ("embed",), None, (dim,), param_dtype)
    else:
      self.gamma_1 = self.gamma_2 = None

  def __call__(self, x, *, train=False, rngs=None):
    x = x + self.pos_embed(x)
    y = self.attn(self.norm1(x), train=train, rngs=rngs)
    if self.gamma_1 is not None:
      y = self.gamma_1[...].astype(y.dtype) * y
    x = x + drop_path(y, self.drop_path, train=train, rngs=rngs)
    y = self.mlp(self.norm2(x, train=train), train=train, rngs=rngs)
    if self.gamma_2 is not None:
      y = self.gamma_2[...].astype(y.dtype) * y
    return x + drop_path(y, self.drop_path, train=train, rngs=rngs)


class Stem(nnx.Module):
  """Official `PatchEmbed` (L349-374): conv -> GELU -> BN (activation BEFORE norm), x4."""

  def __init__(self, in_chans: int, dim: int, *, dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: Any):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    half = dim // 2
    plan = ((in_chans, half, 2), (half, half, 1), (half, dim, 2), (dim, dim, 1))
    # Explicit padding 1 (torch), never 'SAME' (common/layers/conv.py says why).
    self.layers = nnx.List([ConvBN(i, o, 3, stride=s, padding=1, activation="gelu", **kw)
                            for i, o, s in plan])

  def __call__(self, x, *, train=False):
    for layer in self.layers:
      x = layer(x, train=train)
    return x


class Stage(nnx.Module):
  """Official `BasicLayer` (L314-347): blocks, then PatchMerging unless it is the last."""

  def __init__(self, config: STViTConfig, index: int, *, dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: Any):
    c = config
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.remat_policy = c.remat_policy
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
      self.downsample = ConvBN(dim, c.embed_dim[index + 1], 3, stride=2, padding=1, **kw)
    else:
      self.downsample = None

  def __call__(self, x, *, train=False, rngs=None, merge=True):
    """Returns (blocks output, stage output); they differ only where a PatchMerging runs
    (merge=False skips it, so its BatchNorm statistics are not touched either)."""

    def apply_block(block, x, rngs):
      return block(x, train=train, rngs=rngs)

    apply_block = remat.remat(apply_block, self.remat_policy)
    for block in self.blocks:
      x = apply_block(block, x, rngs)
    merged = self.downsample(x, train=train) if merge and self.downsample is not None else x
    return x, merged


class STViT(nnx.Module):
  """SViT/STViT classifier and multi-scale backbone.

  Call `model(x)` for logits (B, num_classes), or pooled (B, projection) features when
  num_classes == 0; `model(x, return_stages=True)` for (logits, stages). `stages` is a list
  of NHWC maps, one per stage: with taps="output" the official `layers.{i}` outputs (stages
  before the last are already PatchMerged to the next stage's size); with taps="blocks" the
  last block's output of each stage (embed_dim[i] channels at strides 4, 8, 16, 32), the
  usual pyramid for dense-prediction heads.

  Backbone use: `model.features(x)` returns the maps of `config.out_indices` (taps="blocks"),
  and `model.feature_info()` their stage, channels and reduction (README, "Backbone for dense
  prediction"). The classifier path never reads `out_indices`.
  """

  def __init__(self, config: STViTConfig, *, rngs: nnx.Rngs | keys.KeyStream):
    self.config = c = STViTConfig.of(config)
    kw = c.layer_kwargs(rngs)
    self.patch_embed = Stem(c.in_chans, c.embed_dim[0], **kw)
    self.layers = nnx.List([Stage(c, i, **kw) for i in range(c.num_stages)])
    self.proj = Linear(c.embed_dim[-1], c.projection, kernel_axes=("embed", "mlp"), **kw)
    self.norm = BatchNorm(c.projection, param_axes=("mlp",), **kw)
    if c.num_classes > 0:
      # Official init (L441-445): trunc_normal(.02) weight, zero bias for nn.Linear.
      self.head = Linear(c.projection, c.num_classes, kernel_axes=("mlp", "vocab"),
                         kernel_init=initializers.trunc_normal(0.02),
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
    x = dropout(x, self.config.drop_rate, train=train, rngs=rngs)
    stages = []
    for stage in self.layers:
      blocks_out, x = stage(x, train=train, rngs=rngs)
      stages.append(x if taps == "output" else blocks_out)
    return x, stages

  def feature_info(self):
    """Per map of `features`: common.tasks.dense_features.FeatureInfo (stage, channels,
    reduction); from the config, so it is known before any call."""
    return self.config.feature_info()

  def features(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> list[jax.Array]:
    """NHWC maps of the stages in `config.out_indices` (each stage's last block output,
    before its PatchMerging), finest first; stages after the last requested one do not run."""
    if x.ndim != 4 or x.shape[-1] != self.config.in_chans:
      raise ValueError(f"x.shape={x.shape} is invalid: expected NHWC (B, H, W, "
                       f"{self.config.in_chans}).")
    wanted = self.config.feature_stages
    x = self.patch_embed(x, train=train)
    x = dropout(x, self.config.drop_rate, train=train, rngs=rngs)
    out = []
    for i, stage in enumerate(self.layers[:wanted[-1] + 1]):
      blocks_out, x = stage(x, train=train, rngs=rngs, merge=i < wanted[-1])
      if i in wanted:
        out.append(blocks_out)
    return out

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
