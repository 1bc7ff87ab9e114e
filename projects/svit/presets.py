"""Paper presets SViT-S/B/L (official factories `stvit_small/base/large`, models/stvit.py L480-539).

Each factory returns an `STViTConfig`; keyword overrides replace any field (e.g.
`svit_base(drop_path_rate=0.4, num_classes=100)`). The architecture fields are the official
ones; `drop_path_rate` defaults to 0 (the official factories read it from the command line),
and `TRAIN_DROP_PATH` records the values of the README training commands.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from projects.svit.config import STViTConfig

# drop_path of the README training commands (run.sh uses 0.3 for small; the README notes
# large ran 0.4 for epochs 0-260, then 0.6).
TRAIN_DROP_PATH = {"SViT-S": 0.1, "SViT-B": 0.4, "SViT-L": 0.6}


def _make(overrides: dict, **arch) -> STViTConfig:
  fields = {f.name for f in dataclasses.fields(STViTConfig)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f"unknown STViTConfig field(s) {unknown}; allowed: {sorted(fields)}.")
  return STViTConfig(**{**arch, **overrides})


def svit_small(**overrides) -> STViTConfig:
  """SViT-S: 25.5M params, 4.4 GFLOPs @224, 83.6 top-1 (README)."""
  return _make(overrides, embed_dim=(64, 128, 320, 512), depths=(3, 5, 9, 3),
               num_heads=(1, 2, 5, 8), n_iter=(1, 1, 1, 1), stoken_size=(8, 4, 1, 1),
               projection=1024, mlp_ratio=4, qkv_bias=True, qk_scale=None,
               layerscale=(False, False, False, False), init_values=1e-5)


def svit_base(**overrides) -> STViTConfig:
  """SViT-B: 51.7M params, 9.9 GFLOPs @224, 84.8 top-1 (README)."""
  return _make(overrides, embed_dim=(96, 192, 384, 512), depths=(4, 6, 14, 6),
               num_heads=(2, 3, 6, 8), n_iter=(1, 1, 1, 1), stoken_size=(8, 4, 1, 1),
               projection=1024, mlp_ratio=4, qkv_bias=True, qk_scale=None,
               layerscale=(False, False, True, True), init_values=1e-6)


def svit_large(**overrides) -> STViTConfig:
  """SViT-L: 95.0M params, 15.6 GFLOPs @224, 85.3 top-1 (README)."""
  return _make(overrides, embed_dim=(96, 192, 448, 640), depths=(4, 7, 19, 8),
               num_heads=(2, 3, 7, 10), n_iter=(1, 1, 1, 1), stoken_size=(8, 4, 1, 1),
               projection=1024, mlp_ratio=4, qkv_bias=True, qk_scale=None,
               layerscale=(False, False, True, True), init_values=1e-6)


PRESETS: dict[str, Callable[..., STViTConfig]] = {
    "SViT-S": svit_small,
    "SViT-B": svit_base,
    "SViT-L": svit_large,
}
# The official code's names for the same models.
_ALIASES = {"svit_small": "SViT-S", "svit_base": "SViT-B", "svit_large": "SViT-L",
            "stvit_small": "SViT-S", "stvit_base": "SViT-B", "stvit_large": "SViT-L"}


def get_preset(name: str, **overrides) -> STViTConfig:
  """Returns the config of a paper preset by paper name ("SViT-B") or code name."""
  key = _ALIASES.get(name, name)
  if key not in PRESETS:
    raise ValueError(f"preset={name!r} is unknown; allowed: "
                     f"{sorted(PRESETS) + sorted(_ALIASES)}.")
  return PRESETS[key](**overrides)
