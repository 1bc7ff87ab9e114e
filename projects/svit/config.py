"""SViT's model config: `STViTConfig`, the paper presets SViT-S/B/L, and `from_config`.

`STViTConfig` field names follow the official constructor (hhb072/STViT models/stvit.py
`STViT.__init__`) so that official kwargs map one to one; per-stage fields are tuples with one
entry per stage. `dtype`, `param_dtype` and `remat_policy` say how the port runs (no official
counterpart); with `num_classes`, `in_chans` and `drop_path_rate` they are inherited from
common.tasks.image_configs.ImageModelFields, with their checks.

`config.model` (see configs/*.py) holds the image task's fields (`name`, `preset`,
`drop_path_rate`, `train_mode`, `mixup`, `vit`: common image classification task), the base
fields `dtype`, `param_dtype`, `remat_policy`, and `arch`: STViTConfig overrides on top of the
preset. `from_config(config.model)` rejects any other field, naming it, before anything is built.
Fields the data decides (`num_classes`, `in_chans`) and `drop_path_rate` are not `arch` fields.
`out_indices` (an `arch` field of ours, no official kwarg) picks the stages `STViT.features`
returns for dense prediction; `STViTConfig.feature_info()` gives their channels and reductions
(README, "Backbone for dense prediction").
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import ml_collections

from common.tasks import dense_features, image_configs


def _pair(value, field: str, stage: int) -> tuple[int, int]:
  """Normalises a super-token size (int or (h, w)) like timm's to_2tuple."""
  pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
  if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
    raise ValueError(f"{field}[{stage}]={value!r} is invalid: expected a positive int or a "
                     "pair (h, w) of positive ints.")
  return pair


@dataclasses.dataclass(frozen=True)
class STViTConfig(image_configs.ImageModelFields):
  """Architecture of an STViT classifier/backbone, and how it runs.

  Attributes:
    embed_dim: channels per stage.
    depths: blocks per stage.
    num_heads: heads of the super-token refine MHSA per stage (must divide embed_dim).
    n_iter: association iterations per stage (>= 1; the official code needs at least one).
    stoken_size: super-token size per stage, int or (h, w); 1 (or (1, 1)) means plain global
      MHSA over all tokens, as the official `direct_forward`.
    projection: channels of the 1x1 conv head before pooling (the official code requires it).
    layerscale: per stage, whether the residual branches are scaled by learned gamma.
    init_values: initial layer-scale value.
    mlp_ratio: ConvFFN hidden width = int(dim * mlp_ratio).
    qkv_bias: bias on the refine qkv projection.
    qk_scale: attention scale override; falsy means head_dim**-0.5 (official `or` rule).
    drop_rate: dropout after the stem, on the FFN and on the attention projection.
    attn_drop_rate: dropout on the refine attention probabilities.
    out_indices: the stages whose maps `STViT.features(x)` returns (backbone use; no official
      counterpart, the classifier ignores it): the last block output of each stage, NHWC,
      embed_dim[i] channels at reduction 4 * 2**i (`feature_info()`). None: every stage.
  """

  embed_dim: Sequence[int] = (96, 192, 384, 512)
  depths: Sequence[int] = (4, 6, 14, 6)
  num_heads: Sequence[int] = (2, 3, 6, 8)
  n_iter: Sequence[int] = (1, 1, 1, 1)
  stoken_size: Sequence[int | tuple[int, int]] = (8, 4, 1, 1)
  projection: int = 1024
  layerscale: Sequence[bool] = (False, False, True, True)
  init_values: float = 1e-6
  mlp_ratio: float = 4.0
  qkv_bias: bool = True
  qk_scale: float | None = None
  drop_rate: float = 0.0
  attn_drop_rate: float = 0.0
  out_indices: Sequence[int] | None = None

  def __post_init__(self):
    per_stage = ("embed_dim", "depths", "num_heads", "n_iter", "stoken_size", "layerscale")
    for name in per_stage:
      value = getattr(self, name)
      if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{name}={value!r} must be a sequence with one entry per stage.")
      object.__setattr__(self, name, tuple(value))
    n = len(self.depths)
    if n < 1:
      raise ValueError(f"depths={self.depths!r} must name at least one stage.")
    for name in per_stage:
      if len(getattr(self, name)) != n:
        raise ValueError(f"{name}={getattr(self, name)!r} has {len(getattr(self, name))} "
                         f"entries; expected {n} (one per stage, as depths).")
    for name in ("embed_dim", "depths", "num_heads", "n_iter"):
      for i, v in enumerate(getattr(self, name)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
          raise ValueError(f"{name}[{i}]={v!r} is invalid: expected a positive int.")
    for i, (dim, heads) in enumerate(zip(self.embed_dim, self.num_heads)):
      if dim % heads:
        raise ValueError(f"embed_dim[{i}]={dim} is not divisible by num_heads[{i}]={heads}; "
                         "the refine MHSA splits channels evenly over heads.")
    if self.embed_dim[0] < 2:
      raise ValueError(f"embed_dim[0]={self.embed_dim[0]} must be >= 2 (the stem's first "
                       "convs have embed_dim[0] // 2 channels).")
    object.__setattr__(self, "stoken_size", tuple(
        _pair(s, "stoken_size", i) for i, s in enumerate(self.stoken_size)))
    object.__setattr__(self, "layerscale", tuple(bool(v) for v in self.layerscale))
    if not isinstance(self.projection, int) or isinstance(self.projection, bool) \
        or self.projection < 1:
      raise ValueError(f"projection={self.projection!r} is invalid: expected a positive int "
                       "(the official head BatchNorm2d(projection) needs it).")
    if not self.mlp_ratio > 0 or int(min(self.embed_dim) * self.mlp_ratio) < 1:
      raise ValueError(f"mlp_ratio={self.mlp_ratio!r} must be > 0 and give a hidden width "
                       ">= 1 for every stage.")
    for name in ("drop_rate", "attn_drop_rate"):
      v = getattr(self, name)
      if not 0.0 <= v < 1.0:
        raise ValueError(f"{name}={v!r} must be in [0, 1).")
    if self.qk_scale is not None and self.qk_scale < 0:
      raise ValueError(f"qk_scale={self.qk_scale!r} must be None or >= 0.")
    super().__post_init__()
    if self.out_indices is not None:  # None stays None, so a preset's stage count can change
      object.__setattr__(self, "out_indices",
                         dense_features.check_out_indices(self.out_indices, n))

  @property
  def num_stages(self) -> int:
    return len(self.depths)

  @property
  def feature_stages(self) -> tuple[int, ...]:
    """The stages `STViT.features` returns: out_indices, or every stage when it is None."""
    return tuple(range(self.num_stages)) if self.out_indices is None else self.out_indices

  def feature_info(self) -> tuple[dense_features.FeatureInfo, ...]:
    """Per map of `STViT.features`: stage, channels embed_dim[i], reduction 4 * 2**i (the
    stride-4 stem, then one stride-2 PatchMerging per stage)."""
    return dense_features.feature_info(
        self.feature_stages, self.embed_dim, [4 * 2**i for i in range(self.num_stages)])

  def drop_path_rates(self) -> list[list[float]]:
    """Per-stage, per-block drop-path rates: linspace(0, rate, sum(depths)) split by stage."""
    return self.stage_drop_path_rates(self.depths)


# Fields that say how the port runs, not what the official constructor builds.
RUN_FIELDS = ("dtype", "param_dtype", "remat_policy")
# Fields of ours with no official constructor kwarg (still `config.model.arch` fields).
PORT_FIELDS = ("out_indices",)
# Official constructor kwargs (every other field).
OFFICIAL_FIELDS = tuple(f.name for f in dataclasses.fields(STViTConfig)
                        if f.name not in RUN_FIELDS + PORT_FIELDS)

# Paper presets (official factories `stvit_small/base/large`, models/stvit.py L480-539). The
# official factories read drop_path_rate from the command line: 0 here, and TRAIN_DROP_PATH
# holds the values of the README training commands.
PRESETS: dict[str, STViTConfig] = {
    # SViT-S: 25.5M params, 4.4 GFLOPs @224, 83.6 top-1 (README).
    "SViT-S": STViTConfig(
        embed_dim=(64, 128, 320, 512), depths=(3, 5, 9, 3), num_heads=(1, 2, 5, 8),
        n_iter=(1, 1, 1, 1), stoken_size=(8, 4, 1, 1), projection=1024, mlp_ratio=4,
        qkv_bias=True, qk_scale=None, layerscale=(False, False, False, False), init_values=1e-5),
    # SViT-B: 51.7M params, 9.9 GFLOPs @224, 84.8 top-1 (README).
    "SViT-B": STViTConfig(
        embed_dim=(96, 192, 384, 512), depths=(4, 6, 14, 6), num_heads=(2, 3, 6, 8),
        n_iter=(1, 1, 1, 1), stoken_size=(8, 4, 1, 1), projection=1024, mlp_ratio=4,
        qkv_bias=True, qk_scale=None, layerscale=(False, False, True, True), init_values=1e-6),
    # SViT-L: 95.0M params, 15.6 GFLOPs @224, 85.3 top-1 (README).
    "SViT-L": STViTConfig(
        embed_dim=(96, 192, 448, 640), depths=(4, 7, 19, 8), num_heads=(2, 3, 7, 10),
        n_iter=(1, 1, 1, 1), stoken_size=(8, 4, 1, 1), projection=1024, mlp_ratio=4,
        qkv_bias=True, qk_scale=None, layerscale=(False, False, True, True), init_values=1e-6),
}
# The official code's names for the same models.
OFFICIAL_NAMES = {"stvit_small": "SViT-S", "stvit_base": "SViT-B", "stvit_large": "SViT-L"}
# drop_path of the README training commands (run.sh uses 0.3 for small; the README notes
# large ran 0.4 for epochs 0-260, then 0.6).
TRAIN_DROP_PATH = {"SViT-S": 0.1, "SViT-B": 0.4, "SViT-L": 0.6}


def preset(name: str, **overrides) -> STViTConfig:
  """The paper preset `name` (or its official factory name) with fields replaced."""
  config = image_configs.lookup_preset(name, PRESETS, OFFICIAL_NAMES)
  return image_configs.replace_fields(config, overrides)


# config.model.arch: overrides of the official fields the data and the run do not decide.
ARCH_FIELDS = tuple(n for n in OFFICIAL_FIELDS + PORT_FIELDS
                    if n not in image_configs.DERIVED_FIELDS)
FIELDS = {**image_configs.MODEL_FIELDS, "arch": ARCH_FIELDS}


def from_config(m: ml_collections.ConfigDict, **data_fields) -> STViTConfig:
  """config.model -> STViTConfig: preset (or the defaults when '') + arch + run fields.

  `data_fields` (num_classes, in_chans) come from the data config; the task passes them.
  An unknown field or a bad value is a ValueError naming it.
  """
  return image_configs.model_config_from(m, STViTConfig, PRESETS, FIELDS, **data_fields)
