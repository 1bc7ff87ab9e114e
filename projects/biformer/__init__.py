"""BiFormer: vision transformer with bi-level routing attention (Zhu et al., CVPR 2023).

A JAX/Flax NNX port of the official rayleizhu/BiFormer@1697bbb (legacy BRA), exact in eval
mode against the official PyTorch outputs (tests/projects/biformer, shared/golden/biformer).
Public API: `BiFormer`, `Features` (model.py); `BiFormerConfig`, `PRESETS`, `preset`,
`from_config` (config.py).
"""
from projects.biformer.config import PRESETS, BiFormerConfig, from_config, preset
from projects.biformer.model import BiFormer, Features

__all__ = ["BiFormer", "BiFormerConfig", "Features", "PRESETS", "from_config", "preset"]
