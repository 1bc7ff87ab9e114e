"""SViT's super-token attention as a named spatial mixer ('stoken'), for other backbones.

common.layers.spatial_mixers finds this module by name; BiFormer's token-mixer ablation
(`config.model.arch.mixer = 'stoken'`) builds it in place of bi-level routing attention. It is
`stoken.StokenAttention` (one association iteration, no qkv bias, as SViT's stages) with one
super token per region of the backbone's grid x grid partition, so it pools the same regions
that BRA routes between; the refine MHSA has spec.num_heads heads.
"""
from __future__ import annotations

from common.layers import spatial_mixers
from projects.svit import stoken


def super_token_mixer(spec: spatial_mixers.SpatialSpec, rngs) -> stoken.StokenAttention:
  return stoken.StokenAttention(spec.dim, grid=spec.grid, n_iter=1, num_heads=spec.num_heads,
                                dtype=spec.dtype, param_dtype=spec.param_dtype, rngs=rngs)


spatial_mixers.register("stoken", super_token_mixer)
