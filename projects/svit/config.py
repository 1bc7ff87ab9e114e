"""`STViTConfig`: the architecture hyper-parameters of SViT/STViT, validated.

Field names follow the official constructor (hhb072/STViT models/stvit.py `STViT.__init__`)
so that official kwargs map one to one; per-stage fields are tuples with one entry per stage.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence


def _pair(value, field: str, stage: int) -> tuple[int, int]:
  """Normalises a super-token size (int or (h, w)) like timm's to_2tuple."""
  pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
  if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
    raise ValueError(f"{field}[{stage}]={value!r} is invalid: expected a positive int or a "
                     "pair (h, w) of positive ints.")
  return pair


@dataclasses.dataclass(frozen=True)
class STViTConfig:
  """Architecture of an STViT classifier/backbone.

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
    drop_path_rate: stochastic depth, linearly increasing over all blocks from 0.
    num_classes: classifier outputs; 0 returns the pooled `projection` features.
    in_chans: input image channels.
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
  drop_path_rate: float = 0.0
  num_classes: int = 1000
  in_chans: int = 3

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
    for name in ("drop_rate", "attn_drop_rate", "drop_path_rate"):
      v = getattr(self, name)
      if not 0.0 <= v < 1.0:
        raise ValueError(f"{name}={v!r} must be in [0, 1).")
    if not isinstance(self.num_classes, int) or self.num_classes < 0:
      raise ValueError(f"num_classes={self.num_classes!r} must be an int >= 0 "
                       "(0 = no classifier, return pooled features).")
    if not isinstance(self.in_chans, int) or self.in_chans < 1:
      raise ValueError(f"in_chans={self.in_chans!r} must be a positive int.")
    if self.qk_scale is not None and self.qk_scale < 0:
      raise ValueError(f"qk_scale={self.qk_scale!r} must be None or >= 0.")

  @property
  def num_stages(self) -> int:
    return len(self.depths)

  def drop_path_rates(self) -> list[list[float]]:
    """Per-stage, per-block drop-path rates: linspace(0, rate, sum(depths)) split by stage."""
    total = sum(self.depths)
    flat = [self.drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
    out, start = [], 0
    for d in self.depths:
      out.append(flat[start:start + d])
      start += d
    return out
