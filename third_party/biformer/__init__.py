"""Adapter from the official BiFormer PyTorch checkpoints to `projects.biformer` parameters.

Upstream: rayleizhu/BiFormer (https://github.com/rayleizhu/BiFormer), commit 1697bbb
("repair broken links", 2023-05-22): models/biformer.py, models/biformer_stl.py,
models/_common.py and ops/bra_legacy.py. Licence: MIT (Copyright (c) Meta Platforms, Inc. and
affiliates, as stated in the upstream LICENSE). No upstream code is copied here; this package
only knows the upstream constructor arguments and state_dict key layout.

Modules:
  official_kwargs: official constructor kwargs -> `BiFormerConfig`.
  state_dict: official state_dict (numpy arrays) <-> model parameters.
"""
