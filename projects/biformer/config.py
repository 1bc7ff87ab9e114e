"""BiFormer's model config: `BiFormerConfig`, the paper presets, and `from_config`.

`BiFormerConfig` field names follow the official constructor (rayleizhu/BiFormer@1697bbb
models/biformer.py `BiFormer.__init__`) where the meaning is the same, so presets and converted
checkpoints read alike. Options the released models never switch on (parametric /
differentiable / soft routing, kv down-sampling other than identity, `pe`, `mlp_dwconv`) are not
modelled. `attention_impl`, `dtype`, `param_dtype` and `remat_policy` say how the port runs. The
fields of every vision model (classes, channels, drop path, dtypes, remat) and their checks are
those of common.tasks.image_configs.ImageModelFields.

`config.model` (see configs/*.py) holds the image task's fields (`name`, `preset`,
`drop_path_rate`, `train_mode`, `mixup`, `vit`: common image classification task), the base
fields `dtype`, `param_dtype`, `remat_policy`, `attention_impl`, and `arch`: BiFormerConfig
overrides on top of the preset. `from_config(config.model)` rejects any other field, naming it,
before anything is built. Fields the data decides (`num_classes`, `in_chans`) and
`drop_path_rate` are not `arch` fields.

Backbone use (README, "Backbone for dense prediction"): `out_indices` picks the stages
`BiFormer.features` returns, `out_norm` adds the official dense backbones' per-stage output
LayerNorm, `BiFormerConfig.feature_info()` gives channels and reductions, and
`dense_preset(name, "detection" | "segmentation")` applies the official downstream n_win /
auto_pad / out_norm (`DENSE_SETTINGS`).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import ml_collections

from common.kernels import dispatch
from common.layers import spatial_mixers
from common.tasks import dense_features, image_configs

# `layout` picks the macro layout: "legacy" is `models/biformer.py` (released T/S/B: two-conv
# stem, conv+BN downsampling, DW3x3 conv pos-embed); "stl" is `models/biformer_stl.py`
# (Swin-T layout: patch-4 conv stem, BN+conv2x2 patch merging, no pos-embed).
LAYOUTS = ("legacy", "stl")
# The routed attention: "official" gathers the routed regions' k/v and runs a dense softmax
# over them, as the official KVGather (bra.py); every other value is the `impl` of the shared
# kernel `common.kernels.block_sparse_attention`, passed unchanged.
ATTENTION_IMPLS = ("official",) + dispatch.IMPLS
# The token mixer of the routed stages (topks[i] > 0), for the token-mixer ablation
# (configs/mixer_ablation.py): "bra" (official), "local" (each region attends to itself only),
# or any common.layers.spatial_mixers name (svit's "stoken": one super token per region).
BUILTIN_MIXERS = ("bra", "local")


def _four(name: str, value: Sequence) -> tuple:
  value = tuple(value)
  if len(value) != 4:
    raise ValueError(f"{name}={value!r}: expected 4 entries, one per stage.")
  return value


@dataclasses.dataclass(frozen=True)
class BiFormerConfig(image_configs.ImageModelFields):
  """Hyper-parameters of a BiFormer (defaults: BiFormer-T's stages, 1000 classes).

  Attributes:
    depth: blocks per stage.
    embed_dim: channels per stage.
    qk_dims: query/key channels per stage for BRA (None: equal to embed_dim).
    head_dim: BRA heads per stage are qk_dims[i] // head_dim (official `nheads`).
    mlp_ratios: MLP hidden width per stage, as a multiple of embed_dim.
    topks: routed regions per query region per stage. -2: global attention with LePE
      (`AttentionLePE`, 8 heads, no qkv bias); -1: the same without LePE (`Attention`).
    n_win: regions per side; a stage map is split into n_win x n_win regions.
    side_dwconv: kernel of the LePE depthwise conv (0 disables it).
    before_attn_dwconv: kernel of the DW conv position embedding (3, or 0 for none).
    layer_scale_init_value: > 0 enables per-channel layer scale with this initial value.
    pre_norm: pre-norm residual blocks (True, released) or post-norm.
    auto_pad: zero-pad stage maps to multiples of n_win inside BRA (needed when the map is
      not divisible; segmentation / detection use it).
    out_indices: the stages whose maps `BiFormer.features(x)` returns (backbone use; the
      official mmdet/mmseg backbones' `out_indices`, all four there): NHWC, embed_dim[i]
      channels at reduction 4 * 2**i (`feature_info()`). The classifier ignores it.
    out_norm: the official detection / segmentation backbone's `extra_norms`: one LayerNorm2d
      (channel LayerNorm, eps 1e-6) per stage, applied to every map `features` returns and
      not fed to the next stage. Adds 2 * sum(embed_dim) parameters (`extra_norms.{i}`); the
      classifier path never uses them.
    qk_scale: overrides the attention scale (None: qk_dim**-0.5 in BRA, (C/8)**-0.5 in
      stage-4 attention).
    layout: "legacy" (released T/S/B) or "stl" (the Swin-T-layout ablation model).
    mixer: the token mixer of the routed stages (topks[i] > 0; no official counterpart):
      "bra" (official), "local" (topks[i] is then ignored: each region reads itself), or a
      common.layers.spatial_mixers name (e.g. "stoken"), built over the n_win x n_win
      regions with the stage's heads and LePE.
    attention_impl: the routed attention, one of ATTENTION_IMPLS.
  """
  depth: tuple[int, ...] = (2, 2, 8, 2)
  embed_dim: tuple[int, ...] = (64, 128, 256, 512)
  qk_dims: tuple[int, ...] | None = None
  head_dim: int = 32
  mlp_ratios: tuple[float, ...] = (3, 3, 3, 3)
  topks: tuple[int, ...] = (1, 4, 16, -2)
  n_win: int = 7
  side_dwconv: int = 5
  before_attn_dwconv: int = 3
  layer_scale_init_value: float = -1.0
  pre_norm: bool = True
  auto_pad: bool = False
  qk_scale: float | None = None
  layout: str = "legacy"
  out_indices: tuple[int, ...] = (0, 1, 2, 3)
  out_norm: bool = False
  mixer: str = "bra"
  attention_impl: str = "official"

  def __post_init__(self):
    set_ = lambda k, v: object.__setattr__(self, k, v)  # frozen dataclass normalisation
    set_("depth", _four("depth", self.depth))
    set_("embed_dim", _four("embed_dim", self.embed_dim))
    set_("qk_dims", self.embed_dim if self.qk_dims is None else _four("qk_dims", self.qk_dims))
    set_("mlp_ratios", _four("mlp_ratios", self.mlp_ratios))
    set_("topks", _four("topks", self.topks))
    for name in ("depth", "embed_dim", "qk_dims"):
      for v in getattr(self, name):
        if not isinstance(v, int) or v < 1:
          raise ValueError(f"{name}={getattr(self, name)!r}: entries must be positive ints.")
    for i, k in enumerate(self.topks):
      if not isinstance(k, int) or k < -2 or k == 0:
        raise ValueError(f"topks[{i}]={k!r}: allowed are k >= 1 (routed attention), -1 "
                         "(global attention) or -2 (global attention with LePE).")
      if k > self.n_win**2:
        raise ValueError(f"topks[{i}]={k}: at most n_win**2={self.n_win**2} regions exist.")
      if k > 0:
        qk, c = self.qk_dims[i], self.embed_dim[i]
        heads = qk // self.head_dim if self.head_dim > 0 else 0
        # Same rule as the official assert [BRA:L128], with heads = qk_dim // head_dim.
        if heads < 1 or qk % heads or c % heads:
          raise ValueError(f"qk_dims[{i}]={qk}, embed_dim[{i}]={c}, head_dim={self.head_dim}: "
                           "need heads = qk_dims // head_dim >= 1 dividing both qk_dims and "
                           "embed_dim.")
      elif self.embed_dim[i] % 8:
        raise ValueError(f"embed_dim[{i}]={self.embed_dim[i]}: stage attention with topk="
                         f"{k} always has 8 heads, so embed_dim must be divisible by 8.")
    for i, r in enumerate(self.mlp_ratios):
      if r <= 0 or int(r * self.embed_dim[i]) < 1:
        raise ValueError(f"mlp_ratios[{i}]={r!r}: must be positive.")
    if not isinstance(self.n_win, int) or self.n_win < 1:
      raise ValueError(f"n_win={self.n_win!r}: must be a positive int.")
    if self.side_dwconv < 0 or (self.side_dwconv and self.side_dwconv % 2 == 0):
      raise ValueError(f"side_dwconv={self.side_dwconv!r}: allowed are 0 or an odd kernel size.")
    if self.before_attn_dwconv not in (0, 3):
      # The official pos-embed conv hard-codes padding=1 [B:L64-65]; only kernel 3 keeps the
      # map size, any other kernel breaks the residual in the official code as well.
      raise ValueError(f"before_attn_dwconv={self.before_attn_dwconv!r}: allowed are 3 or 0.")
    if self.layout not in LAYOUTS:
      raise ValueError(f"layout={self.layout!r}: allowed are {LAYOUTS}.")
    if self.layout == "legacy" and self.embed_dim[0] % 2:
      raise ValueError(f"embed_dim[0]={self.embed_dim[0]}: the legacy stem's first conv has "
                       "embed_dim[0] // 2 channels, so it must be even.")
    if self.attention_impl not in ATTENTION_IMPLS:
      raise ValueError(f"attention_impl={self.attention_impl!r}: allowed are {ATTENTION_IMPLS}.")
    if self.attention_impl != "official":
      for i, k in enumerate(self.topks):
        if k > 0 and self.qk_dims[i] != self.embed_dim[i]:
          # The shared kernel takes k and v of one shape [B, H, T, D].
          raise ValueError(f"attention_impl={self.attention_impl!r} (the shared kernel) needs "
                           f"qk_dims == embed_dim in routed stages; stage {i} has qk_dims="
                           f"{self.qk_dims[i]}, embed_dim={self.embed_dim[i]}.")
    self._check_mixer()
    super().__post_init__()
    set_("out_indices", dense_features.check_out_indices(self.out_indices, 4))
    if not isinstance(self.out_norm, bool):
      raise ValueError(f"out_norm={self.out_norm!r}: must be a bool.")

  def _check_mixer(self):
    if self.mixer in BUILTIN_MIXERS:
      return
    if self.mixer not in spatial_mixers.names():
      raise ValueError(f"mixer={self.mixer!r}: allowed are "
                       f"{BUILTIN_MIXERS + spatial_mixers.names()}.")
    for i, k in enumerate(self.topks):
      if k > 0 and self.qk_dims[i] != self.embed_dim[i]:
        raise ValueError(f"mixer={self.mixer!r} projects q, k and v at the stage width, so "
                         f"qk_dims must equal embed_dim in routed stages; stage {i} has qk_dims="
                         f"{self.qk_dims[i]}, embed_dim={self.embed_dim[i]}.")

  def feature_info(self) -> tuple[dense_features.FeatureInfo, ...]:
    """Per map of `BiFormer.features`: stage, channels embed_dim[i], reduction 4 * 2**i (the
    stride-4 stem, then a stride-2 downsampling before each later stage; both layouts)."""
    return dense_features.feature_info(self.out_indices, self.embed_dim, (4, 8, 16, 32))

  def num_heads(self, stage: int) -> int:
    """BRA heads of a stage (official `nheads = [dim // head_dim for dim in qk_dims]`)."""
    return self.qk_dims[stage] // self.head_dim

  def drop_path_rates(self) -> list[list[float]]:
    """Per-block drop-path rates: linspace(0, rate, sum(depth)) split by stage [B:L213]."""
    return self.stage_drop_path_rates(self.depth)


# Fields that say how the port runs, not what the official constructor builds.
RUN_FIELDS = ("attention_impl", "dtype", "param_dtype", "remat_policy")

# Paper presets: sizes from rayleizhu/BiFormer@1697bbb models/biformer.py [B:L307-402] and
# models/biformer_stl.py `biformer_stl` (shared/specs/vision.md §2.1). Common to all released
# models: n_win 7, topks (1, 4, 16, -2), LePE 5x5, head_dim 32, kv_downsample_mode identity, no
# layer scale, pre-norm. Trainable parameters at 1000 classes (official counts,
# shared/golden/param_counts.json): T 13,142,760; S 25,536,232; B 56,804,968; STL 28,372,552.
_RELEASED = dict(n_win=7, topks=(1, 4, 16, -2), side_dwconv=5, head_dim=32)
PRESETS: dict[str, BiFormerConfig] = {
    # official `biformer_tiny`: 13.1M params, 2.2 GFLOPs, 81.4% top-1.
    "BiFormer-T": BiFormerConfig(depth=(2, 2, 8, 2), embed_dim=(64, 128, 256, 512),
                                 qk_dims=(64, 128, 256, 512), mlp_ratios=(3, 3, 3, 3),
                                 **_RELEASED),
    # official `biformer_small`: 25.5M params, 4.5 GFLOPs, 83.8% top-1.
    "BiFormer-S": BiFormerConfig(depth=(4, 4, 18, 4), embed_dim=(64, 128, 256, 512),
                                 qk_dims=(64, 128, 256, 512), mlp_ratios=(3, 3, 3, 3),
                                 **_RELEASED),
    # official `biformer_base`: 56.8M params, 9.8 GFLOPs, 84.3% top-1.
    "BiFormer-B": BiFormerConfig(depth=(4, 4, 18, 4), embed_dim=(96, 192, 384, 768),
                                 qk_dims=(96, 192, 384, 768), mlp_ratios=(3, 3, 3, 3),
                                 **_RELEASED),
    # official `biformer_stl` (Swin-T layout ablation): 28.4M, 4.6 GFLOPs, 82.7%.
    "BiFormer-STL": BiFormerConfig(depth=(2, 2, 6, 2), embed_dim=(96, 192, 384, 768),
                                   qk_dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 4),
                                   before_attn_dwconv=0, layout="stl", **_RELEASED),
}
# The official factory names of the same models.
OFFICIAL_NAMES = {"biformer_tiny": "BiFormer-T", "biformer_small": "BiFormer-S",
                  "biformer_base": "BiFormer-B", "biformer_stl": "BiFormer-STL"}


def preset(name: str, **overrides) -> BiFormerConfig:
  """The paper preset `name` (or its official factory name) with fields replaced."""
  config = image_configs.lookup_preset(name, PRESETS, OFFICIAL_NAMES)
  return image_configs.replace_fields(config, overrides)


# What the official dense-prediction backbones change (shared/specs/vision.md §2, "downstream";
# object_detection/models_mm/biformer_mm.py and its segmentation twin): a fixed region count
# n_win (16 for COCO detection, 8 for ADE20K 512x512 crops), auto_pad so any input size runs,
# and a LayerNorm2d on every output stage. Their drop path (det 0.2; seg 0.15 Semantic-FPN,
# 0.3 UPerNet) is a training setting, `drop_path_rate`, not set here.
DENSE_SETTINGS = {
    "detection": dict(n_win=16, auto_pad=True, out_norm=True),
    "segmentation": dict(n_win=8, auto_pad=True, out_norm=True),
}


def dense_preset(name: str, task: str, **overrides) -> BiFormerConfig:
  """Paper preset `name` as the official `task` backbone ('detection' | 'segmentation'):
  DENSE_SETTINGS applied, then `overrides` (e.g. num_classes=0, out_indices)."""
  if task not in DENSE_SETTINGS:
    raise ValueError(f"task={task!r}: allowed are {sorted(DENSE_SETTINGS)}.")
  return preset(name, **{**DENSE_SETTINGS[task], **overrides})


# config.model.arch: overrides of the official fields the data and the run do not decide.
ARCH_FIELDS = tuple(f.name for f in dataclasses.fields(BiFormerConfig)
                    if f.name not in RUN_FIELDS + image_configs.DERIVED_FIELDS)
FIELDS = {**image_configs.MODEL_FIELDS, "attention_impl": None, "arch": ARCH_FIELDS}


def from_config(m: ml_collections.ConfigDict, **data_fields) -> BiFormerConfig:
  """config.model -> BiFormerConfig: preset (or the defaults when '') + arch + run fields.

  `data_fields` (num_classes, in_chans) come from the data config; the task passes them.
  An unknown field or a bad value is a ValueError naming it.
  """
  return image_configs.model_config_from(m, BiFormerConfig, PRESETS, FIELDS, **data_fields)
