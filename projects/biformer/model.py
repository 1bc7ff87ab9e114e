"""BiFormer (Zhu et al., CVPR 2023): a four-stage vision transformer with bi-level routing.

Official: rayleizhu/BiFormer@1697bbb models/biformer.py `BiFormer` [B:L136-292] (layout
"legacy", the released T/S/B) and models/biformer_stl.py `BiFormerSTL` (layout "stl").
Everything runs NHWC; the official model is NCHW between blocks, which only changes where
the channel axis sits.

Usage:
  model = BiFormer(presets.biformer_t(num_classes=10), rngs=nnx.Rngs(0))
  model.eval()
  logits = model(images_nhwc)                           # classifier
  logits, feats = model(images_nhwc, return_features=True)
  feats.stages[i]        # (N, H_i, W_i, C_i) after stage i (backbone outputs, strides 4..32)
  feats.r_idx["s.b"]     # int32 (N, n_win**2, topk) router indices of block b of stage s
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from projects.biformer import block as block_lib
from projects.biformer import layers
from projects.biformer.model_config import BiFormerConfig

Dtype = layers.Dtype


@dataclasses.dataclass
class Features:
  """Multi-scale outputs of the four stages and the routing decisions of every BRA block.

  Attributes:
    stages: four NHWC maps, the outputs of stages 0..3 (official `stages.{i}` outputs).
    r_idx: router indices per block keyed "<stage>.<block>", int32 (N, n_win**2, topk), in
      descending affinity order. Blocks with global attention have no entry.
    pooled: the pre-head features (norm -> spatial mean), (N, C_3).
  """
  stages: tuple[jax.Array, ...]
  r_idx: dict[str, jax.Array]
  pooled: jax.Array


jax.tree_util.register_dataclass(Features, data_fields=["stages", "r_idx", "pooled"],
                                 meta_fields=[])


class ConvStem(nnx.Module):
  """Legacy stem: Conv3x3 s2 -> BN -> GELU -> Conv3x3 s2 -> BN [B:L186-192] (norm before act)."""

  def __init__(self, cin: int, dim: int, *, dtype: Dtype, param_dtype: Dtype, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.conv1 = layers.conv2d(cin, dim // 2, 3, stride=2, padding=1, **kw)
    self.bn1 = layers.batch_norm(dim // 2, **kw)
    self.conv2 = layers.conv2d(dim // 2, dim, 3, stride=2, padding=1, **kw)
    self.bn2 = layers.batch_norm(dim, **kw)

  def __call__(self, x):
    x = jax.nn.gelu(self.bn1(self.conv1(x)), approximate=False)
    return self.bn2(self.conv2(x))


class ConvBN(nnx.Module):
  """Conv (kernel k, stride s, padding p) -> BN: legacy downsampling [B:L199-203], STL stem."""

  def __init__(self, cin: int, dim: int, kernel: int, stride: int, padding: int, *,
               dtype: Dtype, param_dtype: Dtype, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.conv = layers.conv2d(cin, dim, kernel, stride=stride, padding=padding, **kw)
    self.bn = layers.batch_norm(dim, **kw)

  def __call__(self, x):
    return self.bn(self.conv(x))


class BNConv(nnx.Module):
  """BN -> Conv2x2 s2: the STL patch merging (biformer_stl.py, norm_layer=BatchNorm2d)."""

  def __init__(self, cin: int, dim: int, *, dtype: Dtype, param_dtype: Dtype,
               rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.bn = layers.batch_norm(cin, **kw)
    self.conv = layers.conv2d(cin, dim, 2, stride=2, **kw)

  def __call__(self, x):
    return self.conv(self.bn(x))


class BiFormer(nnx.Module):
  """BiFormer classifier / backbone on NHWC images.

  Call `model.eval()` for inference (BN running stats, no drop path) and `model.train()` for
  training; drop path draws from the 'dropout' stream of the rngs given at construction.
  """

  def __init__(self, config: BiFormerConfig, *, dtype: Dtype = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    self.config = config
    cfg = config
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    dims = cfg.embed_dim
    if cfg.layout == "legacy":
      down = [ConvStem(cfg.in_chans, dims[0], **kw)]
      down += [ConvBN(dims[i], dims[i + 1], 3, 2, 1, **kw) for i in range(3)]
      pos_kernel = cfg.before_attn_dwconv
    else:  # "stl": biformer_stl.py has no pos-embed, layer scale or post-norm.
      down = [ConvBN(cfg.in_chans, dims[0], 4, 4, 0, **kw)]
      down += [BNConv(dims[i], dims[i + 1], **kw) for i in range(3)]
      pos_kernel = 0
    self.downsample_layers = nnx.List(down)
    rates = cfg.drop_path_rates()
    self.stages = nnx.List([
        nnx.List([
            block_lib.Block(
                dims[i], topk=cfg.topks[i], num_heads=cfg.num_heads(i) if cfg.topks[i] > 0 else 8,
                n_win=cfg.n_win, qk_dim=cfg.qk_dims[i], qk_scale=cfg.qk_scale,
                mlp_ratio=cfg.mlp_ratios[i], side_dwconv=cfg.side_dwconv,
                before_attn_dwconv=pos_kernel,
                layer_scale_init_value=(cfg.layer_scale_init_value
                                        if cfg.layout == "legacy" else -1.0),
                pre_norm=cfg.pre_norm or cfg.layout == "stl",
                auto_pad=cfg.auto_pad, drop_path=rates[i][j],
                attention_impl=cfg.attention_impl, **kw)
            for j in range(cfg.depth[i])
        ]) for i in range(4)
    ])
    self.norm = layers.batch_norm(dims[-1], **kw)
    self.head = (layers.linear(dims[-1], cfg.num_classes, ("embed", "vocab"), **kw)
                 if cfg.num_classes > 0 else None)

  def forward_features(self, x: jax.Array) -> Features:
    """x: (N, H, W, in_chans) -> Features (stage maps, router indices, pooled features)."""
    if x.ndim != 4 or x.shape[-1] != self.config.in_chans:
      raise ValueError(f"input shape {x.shape}: expected NHWC (N, H, W, "
                       f"{self.config.in_chans}).")
    stages, r_idx = [], {}
    for i in range(4):
      x = self.downsample_layers[i](x)
      for j, blk in enumerate(self.stages[i]):
        x, idx = blk(x)
        if idx is not None:
          r_idx[f"{i}.{j}"] = idx
      stages.append(x)
    pooled = self.norm(x).mean(axis=(1, 2))
    return Features(stages=tuple(stages), r_idx=r_idx, pooled=pooled)

  def __call__(self, x: jax.Array, *, return_features: bool = False):
    """x: (N, H, W, in_chans) -> logits (N, num_classes), or pooled features if num_classes=0.

    With return_features=True, returns (logits, Features).
    """
    feats = self.forward_features(x)
    out = self.head(feats.pooled) if self.head is not None else feats.pooled
    return (out, feats) if return_features else out
