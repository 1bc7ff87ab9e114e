"""Logical-axis -> mesh-axis rules for Monet, with expert parallelism.

Every parameter carries logical names (see layers.param). Expert tensors put their E axis on
'expert': router kernels (d, H, E), `u` (d, E, m) and its bias (E, m), `v` (E, m, d) and the output
biases (E, d). The routing heads H and the expert width m stay unsharded by default. The router
BatchNorm statistics carry no names and are replicated. Rules that name a mesh axis the mesh does
not have map to None, so one rule set serves any mesh.

A global view is kept under jit: the router's batch statistics (train mode) are computed over the
whole global batch, i.e. a "sync" BatchNorm, whatever the data sharding.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from flax import nnx

# (logical name, mesh axis or None)
DEFAULT_RULES: tuple[tuple[str, str | None], ...] = (
    ("batch", "data"),
    ("expert", "expert"),
    ("embed", None),
    ("mlp", None),
    ("heads", None),
    ("kv", None),
    ("vocab", None),
)


def logical_to_mesh_spec(spec: PartitionSpec, mesh: Mesh,
                         rules: Sequence[tuple[str, str | None]] = DEFAULT_RULES) -> PartitionSpec:
  """Maps one logical PartitionSpec to mesh axes; each mesh axis is used at most once."""
  table = dict(rules)
  used, out = set(), []
  for name in spec:
    if name is None:
      out.append(None)
      continue
    if name not in table:
      raise ValueError(f"logical axis {name!r}: no sharding rule; rules cover {sorted(table)}.")
    axis = table[name]
    if axis is not None and (axis not in mesh.axis_names or axis in used):
      axis = None
    if axis is not None:
      used.add(axis)
    out.append(axis)
  return PartitionSpec(*out)


def state_shardings(state: Any, mesh: Mesh,
                    rules: Sequence[tuple[str, str | None]] = DEFAULT_RULES) -> Any:
  """NamedShardings for an nnx State (as from nnx.split), following the logical names."""
  specs = nnx.get_partition_spec(state)
  return jax.tree.map(lambda s: NamedSharding(mesh, logical_to_mesh_spec(s, mesh, rules)), specs)


def batch_sharding(mesh: Mesh, ndim: int = 2,
                   rules: Sequence[tuple[str, str | None]] = DEFAULT_RULES) -> NamedSharding:
  """Sharding of a (batch, ...) input: batch on the mesh axis the 'batch' rule names."""
  return NamedSharding(mesh, logical_to_mesh_spec(PartitionSpec("batch", *([None] * (ndim - 1))),
                                                  mesh, rules))
