"""SViT / STViT: Vision Transformer with Super Token Sampling (Huang et al., CVPR 2023).

Public API: `STViT` (model.py), `STViTConfig` (config.py) and the paper presets
`svit_small/base/large`, `get_preset` (presets.py). Official weights convert through
`third_party.stvit`; `python -m projects.svit.convert` is the command line.
"""
from projects.svit.config import STViTConfig
from projects.svit.model import STViT
from projects.svit.presets import get_preset, svit_base, svit_large, svit_small

__all__ = ["STViT", "STViTConfig", "get_preset", "svit_small", "svit_base", "svit_large"]
