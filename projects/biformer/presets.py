"""Paper presets: BiFormer-T/S/B (official `biformer_tiny/small/base`) and BiFormer-STL.

Sizes from rayleizhu/BiFormer@1697bbb models/biformer.py [B:L307-402] and
models/biformer_stl.py `biformer_stl`; shared/specs/vision.md §2.1 tabulates them. Each
factory returns a `BiFormerConfig`; keyword overrides (num_classes, drop_path_rate,
auto_pad, n_win, ...) are applied on top, exactly as the official factories forward **kwargs.

Trainable parameters at num_classes=1000 (official counts, shared/golden/param_counts.json
and vision.md §2.1): T 13,142,760; S 25,536,232; B 56,804,968; STL 28,372,552.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from flax import nnx

from projects.biformer.model import BiFormer
from projects.biformer.model_config import BiFormerConfig

# Common to all released models: n_win 7, topks (1, 4, 16, -2), LePE 5x5, head_dim 32,
# kv_downsample_mode identity, no layer scale, pre-norm.
_COMMON = dict(n_win=7, topks=(1, 4, 16, -2), side_dwconv=5, head_dim=32)


def _make(base: dict, overrides: dict) -> BiFormerConfig:
  fields = {f.name for f in dataclasses.fields(BiFormerConfig)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f"unknown BiFormerConfig fields {unknown}; allowed are {sorted(fields)}.")
  return BiFormerConfig(**{**_COMMON, **base, **overrides})


def biformer_t(**overrides) -> BiFormerConfig:
  """BiFormer-T (official `biformer_tiny`): 13.1M params, 2.2 GFLOPs, 81.4% top-1."""
  return _make(dict(depth=(2, 2, 8, 2), embed_dim=(64, 128, 256, 512),
                    qk_dims=(64, 128, 256, 512), mlp_ratios=(3, 3, 3, 3)), overrides)


def biformer_s(**overrides) -> BiFormerConfig:
  """BiFormer-S (official `biformer_small`): 25.5M params, 4.5 GFLOPs, 83.8% top-1."""
  return _make(dict(depth=(4, 4, 18, 4), embed_dim=(64, 128, 256, 512),
                    qk_dims=(64, 128, 256, 512), mlp_ratios=(3, 3, 3, 3)), overrides)


def biformer_b(**overrides) -> BiFormerConfig:
  """BiFormer-B (official `biformer_base`): 56.8M params, 9.8 GFLOPs, 84.3% top-1."""
  return _make(dict(depth=(4, 4, 18, 4), embed_dim=(96, 192, 384, 768),
                    qk_dims=(96, 192, 384, 768), mlp_ratios=(3, 3, 3, 3)), overrides)


def biformer_stl(**overrides) -> BiFormerConfig:
  """BiFormer-STL (official `biformer_stl`, Swin-T layout ablation): 28.4M, 4.6 GFLOPs, 82.7%."""
  return _make(dict(depth=(2, 2, 6, 2), embed_dim=(96, 192, 384, 768),
                    qk_dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 4),
                    before_attn_dwconv=0, layout="stl"), overrides)


# Paper names -> factories. The official timm names are accepted as aliases.
PRESETS = {
    "BiFormer-T": biformer_t,
    "BiFormer-S": biformer_s,
    "BiFormer-B": biformer_b,
    "BiFormer-STL": biformer_stl,
}
ALIASES = {"biformer_tiny": "BiFormer-T", "biformer_small": "BiFormer-S",
           "biformer_base": "BiFormer-B", "biformer_stl": "BiFormer-STL"}


def get_config(name: str, **overrides) -> BiFormerConfig:
  """The preset config called `name` (paper name or official factory name)."""
  key = ALIASES.get(name, name)
  if key not in PRESETS:
    raise ValueError(f"preset name={name!r}: allowed are {sorted(PRESETS)} "
                     f"(or {sorted(ALIASES)}).")
  return PRESETS[key](**overrides)


def create(name: str, *, rngs: nnx.Rngs, dtype=None, param_dtype=jnp.float32,
           **overrides) -> BiFormer:
  """Builds the preset model `name` (see `get_config`)."""
  return BiFormer(get_config(name, **overrides), dtype=dtype, param_dtype=param_dtype,
                  rngs=rngs)
