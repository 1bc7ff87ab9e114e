"""BiFormer: vision transformer with bi-level routing attention (Zhu et al., CVPR 2023).

A JAX/Flax NNX port of the official rayleizhu/BiFormer@1697bbb (legacy BRA), exact in eval
mode against the official PyTorch outputs (tests/projects/biformer, shared/golden/biformer).
"""
from projects.biformer.model import BiFormer, Features
from projects.biformer.model_config import BiFormerConfig
from projects.biformer.presets import PRESETS, create, get_config

__all__ = ["BiFormer", "BiFormerConfig", "Features", "PRESETS", "create", "get_config"]
