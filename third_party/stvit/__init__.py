"""Adapter for official STViT (SViT) PyTorch state_dicts -> projects.svit NNX models.

Upstream: hhb072/STViT, commit c9ed9a4a3d2f258a1626dff4330032a714e3fa92, file
models/stvit.py (class `STViT` and the factories `stvit_small/base/large`). Licence: MIT, as
stated in the header of models/stvit.py ("Copyright (c) 2023 CASIA, Licensed under The MIT
License"); the repository itself ships no LICENSE file. Nothing here is copied from upstream;
this package only knows the official constructor kwargs, state_dict key names and layouts.

Modules: `config` (official kwargs -> STViTConfig), `weights` (state_dict -> parameters),
`case` (run a golden case folder). The CLI is `python -m projects.svit.convert`.
"""
