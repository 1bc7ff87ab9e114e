"""The routing attention as a named mixer ('routing') for common.layers.mixers.

Each layer splits its heads as the paper's layers do: `local_heads` local heads (query blocks
of `query_block` reading `memory_flange` earlier positions) and the rest routing heads (shared
QK, online k-means with `num_clusters` clusters of `window` tokens, i.e. every query reads at
most `window` keys of its cluster). Defaults give a 256-key budget per query at n = 2048:
local blocks of 128 with a 128 flange, K = seq_len // 256 clusters of 256. No relative
positions (the recall task is matched by content), attention_impl from the spec.
Options: local_heads (num_heads // 2), window (256), query_block (128), memory_flange (128),
kmeans_decay (0.999), beta (1e-4), mask_self (False), scale_logits (False), as
projects/routing_transformer/config.py (the last two are its routing_mask_self /
routing_scale_logits: False is the official TF numerics).
"""
from __future__ import annotations

from flax import nnx

from common.layers import mixers
from projects.routing_transformer.attention import RoutingSelfAttention


def build(spec: mixers.MixerSpec, options: dict, rngs: nnx.Rngs) -> RoutingSelfAttention:
  o = mixers.take_options("routing", options, {
      "local_heads": spec.num_heads // 2, "window": 256, "query_block": 128,
      "memory_flange": 128, "kmeans_decay": 0.999, "beta": 1e-4, "mask_self": False,
      "scale_logits": False})
  if spec.seq_len % o["window"]:
    raise ValueError(f"mixer 'routing': seq_len={spec.seq_len} must be a multiple of "
                     f"window={o['window']} (K = seq_len / window clusters).")
  return RoutingSelfAttention(
      spec.hidden, num_local_heads=o["local_heads"],
      num_routing_heads=spec.num_heads - o["local_heads"], head_dim=spec.head_dim,
      num_clusters=spec.seq_len // o["window"], window=o["window"],
      query_block=o["query_block"], memory_flange=o["memory_flange"], local_relative=False,
      routing_relative=False, max_relative_position=0, attention_dropout=0.0,
      decay=o["kmeans_decay"], beta=o["beta"], routing_mask_self=o["mask_self"],
      routing_scale_logits=o["scale_logits"], attention_impl=spec.attention_impl,
      kernel_init=nnx.initializers.lecun_normal(), dtype=spec.dtype,
      param_dtype=spec.param_dtype, rngs=rngs)


mixers.register("routing", build)
