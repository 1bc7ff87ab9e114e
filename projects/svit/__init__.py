"""SViT / STViT: Vision Transformer with Super Token Sampling (Huang et al., CVPR 2023).

Public API: `STViT` (model.py); `STViTConfig`, the paper presets `PRESETS` / `preset(name)`
and `from_config` (config.py). Official weights convert through `third_party.stvit`;
`python -m projects.svit.convert` is the command line.
"""
from projects.svit.config import PRESETS, STViTConfig, from_config, preset
from projects.svit.model import STViT

__all__ = ["STViT", "STViTConfig", "PRESETS", "from_config", "preset"]
