"""Official SEA (PerlinAttention) checkpoints -> projects.sea parameters.

Upstream: gmlwns2000/sea-attention, commit 5609413b14f480d741cf1edde49691576fc92b50,
`src/models/perlin_attention/attention.py` (`PerlinAttention`), `modules.py`
(`CausalConv2d`, `KeepRes`), with performer-pytorch 1.1.4 (`FastAttention`, MIT licence,
(c) 2020 Phil Wang) for the Performer buffer.
Licence: the sea-attention repository has no licence file at that commit; nothing of its code is
copied here. This package only reads its `state_dict()` key names and tensor layouts.

  from third_party.sea_attention import layer_kwargs_from_configs, load_state_dict
"""
from third_party.sea_attention.config import layer_kwargs_from_configs
from third_party.sea_attention.state_dict import IGNORED_KEYS, load_state_dict, param_map

__all__ = ["IGNORED_KEYS", "layer_kwargs_from_configs", "load_state_dict", "param_map"]
