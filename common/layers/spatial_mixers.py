"""Spatial token mixers by name: one registry, so a vision backbone can swap its attention.

The 2-D, non-causal counterpart of common.layers.mixers (whose mixers are causal over a
sequence). A spatial mixer maps a normed map x (N, H, W, C) -> (N, H, W, C) with the house
call convention `__call__(x, *, train=False, rngs=None)` and owns its projections, so mixers
with different internals compare at the same call site of one backbone (BiFormer's
`config.model.arch.mixer`, the token-mixer ablation).

  build(name, spec, rngs)     a mixer built from a SpatialSpec.
  register(name, factory)     factory(spec, rngs) -> mixer.
  names()                     every registered name.

Projects register theirs in `projects/<name>/mixers.py`, found on first use of an unknown name
(so common/ never imports a project): svit 'stoken' (super-token attention).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax.numpy as jnp
from flax import nnx

from common import registry


@dataclasses.dataclass(frozen=True)
class SpatialSpec:
  """What every spatial mixer is built from.

  Attributes:
    dim: channels of the map.
    num_heads: attention heads.
    grid: regions per side of the backbone's partition (BiFormer's n_win): the map is cut into
      grid x grid regions, which a mixer may use as its windows or super tokens.
  """
  dim: int
  num_heads: int
  grid: int
  dtype: Any = None
  param_dtype: Any = jnp.float32


Factory = Callable[[SpatialSpec, Any], nnx.Module]
_FACTORIES: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> Factory:
  """Makes `name` available to `build`. A second module claiming the name is an error."""
  return registry.claim(_FACTORIES, "spatial mixer", name, factory)


def names() -> tuple[str, ...]:
  registry.import_project_modules("mixers")
  return tuple(sorted(_FACTORIES))


def build(name: str, spec: SpatialSpec, rngs: Any) -> nnx.Module:
  factory = registry.find(_FACTORIES, name, "mixers")
  if factory is None:
    raise ValueError(f"spatial mixer {name!r} is not registered; choose one of {names()}.")
  if spec.dim % spec.num_heads:
    raise ValueError(f"spatial mixer {name!r}: dim={spec.dim} is not divisible by num_heads="
                     f"{spec.num_heads}.")
  return factory(spec, rngs)
