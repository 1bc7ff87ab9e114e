"""Monet's entries for `config.mesh.rules`: expert parallelism plus FSDP on a TPU pod.

The mapping itself (logical names -> PartitionSpec, batch placement) is common.train.sharding;
only the rule set is Monet's. Parameters carry logical names (common.layers.keys.param): expert tensors put
their E axis on 'expert' (router kernels (d, H, E), `u` (d, E, m) and its bias (E, m), `v`
(E, m, d), output biases (E, d)); the expert width m is 'mlp'; attention uses 'heads'/'kv'. The
router BatchNorm statistics carry the name None and are replicated.

Monet routes densely: every token computes all E*m hidden units, weighted by g. Sharding E over
the 'expert' mesh axis is therefore tensor parallelism over experts (a partial sum over E, then a
reduction), not token dispatch: the batch is NOT split over 'expert', and attention heads and the
vocabulary use the same axis so no chip idles outside the expert layers. 'embed' goes to 'fsdp'
(parameters and Adam moments sharded, gathered per layer). Under jit the router's train-mode
batch statistics are computed over the global batch, i.e. a synchronised BatchNorm, whatever the
data sharding.

`POD_RULES` goes first in `config.mesh.rules` (the first rule for a name wins), e.g.
  config.mesh.shape = {"data": -1, "fsdp": 8, "model": 1, "expert": 4}
  config.mesh.rules = POD_RULES
"""
from __future__ import annotations

POD_RULES: tuple[tuple[str, object], ...] = (
    ("batch", ("data", "fsdp")),
    ("expert", "expert"),
    ("embed", "fsdp"),
    ("mlp", None),        # m is 12-24 wide in the presets: too small to split
    ("heads", "expert"),
    ("kv", None),
    ("vocab", "expert"),
)

# A single host (CPU or one GPU): everything data-parallel, parameters replicated.
DATA_PARALLEL_RULES: tuple[tuple[str, object], ...] = (
    ("batch", ("data", "fsdp")),
    ("expert", "expert"),
    ("embed", "fsdp"),
    ("mlp", None),
    ("heads", "model"),
    ("kv", None),
    ("vocab", "model"),
)
