"""Official `STViT(**kwargs)` constructor kwargs -> `projects.svit.STViTConfig`."""
from __future__ import annotations

from typing import Any, Mapping

from projects.svit.config import STViTConfig

# Official kwargs with the same meaning here (models/stvit.py L390-397).
_MAPPED = ("in_chans", "num_classes", "embed_dim", "depths", "num_heads", "n_iter",
           "stoken_size", "mlp_ratio", "qkv_bias", "qk_scale", "drop_rate", "attn_drop_rate",
           "drop_path_rate", "projection", "layerscale", "init_values")
# Official kwargs that do not change the forward: activation checkpointing, and `freeze_bn`,
# which the official class stores but never reads.
_IGNORED = ("use_checkpoint", "checkpoint_num", "freeze_bn")

# Official defaults (L390-397) for kwargs a config may omit.
_OFFICIAL_DEFAULTS = dict(
    in_chans=3, num_classes=1000, embed_dim=(96, 192, 384, 768), depths=(2, 2, 6, 2),
    num_heads=(3, 6, 12, 24), n_iter=(1, 1, 1, 1), stoken_size=(8, 4, 2, 1), mlp_ratio=4.0,
    qkv_bias=True, qk_scale=None, drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.1,
    projection=None, layerscale=(False, False, False, False), init_values=1e-6)


def config_from_kwargs(kwargs: Mapping[str, Any]) -> STViTConfig:
  """Builds the equivalent config; unknown kwargs raise a ValueError listing them.

  The official constructor swallows unknown kwargs (`**kwargs`); here they are an error so
  that a misspelt setting cannot silently fall back to a default.
  """
  unknown = sorted(set(kwargs) - set(_MAPPED) - set(_IGNORED))
  if unknown:
    raise ValueError(f"unknown STViT kwargs {unknown}; allowed: {sorted(_MAPPED + _IGNORED)}.")
  values = {k: kwargs.get(k, _OFFICIAL_DEFAULTS[k]) for k in _MAPPED}
  return STViTConfig(**values)
