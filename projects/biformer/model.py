"""BiFormer (Zhu et al., CVPR 2023): a four-stage vision transformer with bi-level routing.

Official: rayleizhu/BiFormer@1697bbb models/biformer.py `BiFormer` [B:L136-292] (layout
"legacy", the released T/S/B) and models/biformer_stl.py `BiFormerSTL` (layout "stl").
Everything runs NHWC; the official model is NCHW between blocks, which only changes where
the channel axis sits.

Usage:
  model = BiFormer(config.preset("BiFormer-T", num_classes=10), rngs=nnx.Rngs(0))
  logits = model(images_nhwc)                           # classifier, eval mode
  logits = model(images_nhwc, train=True, rngs=nnx.Rngs(dropout=k))  # BN batch stats, drop path
  logits, feats = model(images_nhwc, return_features=True)
  feats.stages[i]        # (N, H_i, W_i, C_i) after stage i (backbone outputs, strides 4..32)
  feats.r_idx["s.b"]     # int32 (N, n_win**2, topk) router indices of block b of stage s

Backbone for dense prediction (README, "Backbone for dense prediction"):
  model = BiFormer(config.dense_preset("BiFormer-T", "segmentation", num_classes=0), rngs=...)
  maps = model.features(images_nhwc)   # NHWC maps of config.out_indices, finest first
  model.feature_info()                 # (stage, channels, reduction) of each map
"""
from __future__ import annotations

import dataclasses

import jax
from flax import nnx

from common.layers import activations, keys, remat
from common.layers.conv import Conv2d, ConvBN
from common.layers.linear import Linear
from common.layers.norms import BatchNorm, LayerNorm
from projects.biformer import block as block_lib
from projects.biformer.attention import LINEAR_INIT
from projects.biformer.config import BiFormerConfig

_CONV_AXES = (None, None, None, "embed")


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

  def __init__(self, cin: int, dim: int, **kw):
    self.conv1 = Conv2d(cin, dim // 2, 3, stride=2, padding=1, kernel_axes=_CONV_AXES, **kw)
    self.bn1 = BatchNorm(dim // 2, **kw)
    self.conv2 = Conv2d(dim // 2, dim, 3, stride=2, padding=1, kernel_axes=_CONV_AXES, **kw)
    self.bn2 = BatchNorm(dim, **kw)

  def __call__(self, x, *, train=False):
    x = activations.gelu(self.bn1(self.conv1(x), train=train))
    return self.bn2(self.conv2(x), train=train)


class BNConv(nnx.Module):
  """BN -> Conv2x2 s2: the STL patch merging (biformer_stl.py, norm_layer=BatchNorm2d)."""

  def __init__(self, cin: int, dim: int, **kw):
    self.bn = BatchNorm(cin, **kw)
    self.conv = Conv2d(cin, dim, 2, stride=2, kernel_axes=_CONV_AXES, **kw)

  def __call__(self, x, *, train=False):
    return self.conv(self.bn(x, train=train))


class BiFormer(nnx.Module):
  """BiFormer classifier / backbone on NHWC images.

  `train=True` uses batch statistics in BatchNorm (updating the running ones) and turns drop
  path on; its masks draw from `rngs.dropout()`. `config.remat_policy` rematerialises each
  block; `config.dtype` / `config.param_dtype` are the compute and parameter dtypes.
  """

  def __init__(self, config: BiFormerConfig, *, rngs: nnx.Rngs | keys.KeyStream):
    self.config = cfg = BiFormerConfig.of(config)
    kw = cfg.layer_kwargs(rngs)
    dims = cfg.embed_dim
    if cfg.layout == "legacy":
      down = [ConvStem(cfg.in_chans, dims[0], **kw)]
      down += [ConvBN(dims[i], dims[i + 1], 3, stride=2, padding=1, **kw) for i in range(3)]
      pos_kernel = cfg.before_attn_dwconv
    else:  # "stl": biformer_stl.py has no pos-embed, layer scale or post-norm.
      down = [ConvBN(cfg.in_chans, dims[0], 4, stride=4, **kw)]
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
                attention_impl=cfg.attention_impl, mixer=cfg.mixer, **kw)
            for j in range(cfg.depth[i])
        ]) for i in range(4)
    ])
    self.norm = BatchNorm(dims[-1], **kw)
    # The official dense backbones' `extra_norms` (LayerNorm2d, timm's eps 1e-6), outputs only.
    self.extra_norms = (nnx.List([LayerNorm(d, epsilon=1e-6, **kw) for d in dims])
                        if cfg.out_norm else None)
    self.head = (Linear(dims[-1], cfg.num_classes, kernel_axes=("embed", "vocab"),
                        **LINEAR_INIT, **kw) if cfg.num_classes > 0 else None)

  def _stages(self, x, *, last: int, train: bool, rngs):
    """Runs stages 0..last on x (N, H, W, in_chans); yields (stage, its output map, its
    blocks' router indices {"stage.block": idx})."""
    if x.ndim != 4 or x.shape[-1] != self.config.in_chans:
      raise ValueError(f"input shape {x.shape}: expected NHWC (N, H, W, "
                       f"{self.config.in_chans}).")

    def apply_block(block, x, rngs):
      return block(x, train=train, rngs=rngs)

    apply_block = remat.remat(apply_block, self.config.remat_policy)
    for i in range(last + 1):
      x = self.downsample_layers[i](x, train=train)
      r_idx = {}
      for j, blk in enumerate(self.stages[i]):
        x, idx = apply_block(blk, x, rngs)
        if idx is not None:
          r_idx[f"{i}.{j}"] = idx
      yield i, x, r_idx

  def forward_features(self, x: jax.Array, *, train: bool = False,
                       rngs: nnx.Rngs | None = None) -> Features:
    """x: (N, H, W, in_chans) -> Features (stage maps, router indices, pooled features)."""
    stages, r_idx = [], {}
    for _, x, idx in self._stages(x, last=3, train=train, rngs=rngs):
      stages.append(x)
      r_idx.update(idx)
    pooled = self.norm(x, train=train).mean(axis=(1, 2))
    return Features(stages=tuple(stages), r_idx=r_idx, pooled=pooled)

  def feature_info(self):
    """Per map of `features`: common.tasks.dense_features.FeatureInfo (stage, channels,
    reduction); from the config, so it is known before any call."""
    return self.config.feature_info()

  def features(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> list[jax.Array]:
    """NHWC maps of the stages in `config.out_indices`, finest first (with `out_norm`, each
    through its extra LayerNorm, which the next stage does not see, as the official dense
    backbones); stages after the last requested one do not run, nor do norm and head."""
    wanted = self.config.out_indices
    return [self.extra_norms[i](x) if self.extra_norms is not None else x
            for i, x, _ in self._stages(x, last=wanted[-1], train=train, rngs=rngs)
            if i in wanted]

  def __call__(self, x: jax.Array, *, train: bool = False, rngs: nnx.Rngs | None = None,
               return_features: bool = False):
    """x: (N, H, W, in_chans) -> logits (N, num_classes), or pooled features if num_classes=0.

    With return_features=True, returns (logits, Features).
    """
    feats = self.forward_features(x, train=train, rngs=rngs)
    out = self.head(feats.pooled) if self.head is not None else feats.pooled
    return (out, feats) if return_features else out
