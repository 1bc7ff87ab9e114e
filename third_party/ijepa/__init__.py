"""Adapter for official I-JEPA PyTorch state_dicts -> projects.sparse_jepa NNX models.

Upstream: facebookresearch/ijepa, commit 52c1ae95d05f743e000e8f10a1f3a79b10cff048
(src/models/vision_transformer.py, src/train.py). Licence of the upstream code and checkpoints:
Creative Commons Attribution-NonCommercial 4.0 International (CC BY-NC 4.0). Nothing here is copied
from upstream; this package only knows its state_dict key names and tensor layouts.

The mapping lives in `third_party.ijepa.convert`;
the CLI is `python -m projects.sparse_jepa.convert`.
"""
