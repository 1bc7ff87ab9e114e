"""Logical-axis sharding: parameter metadata names -> mesh axes, and host batches -> global arrays.

Layers annotate parameters with logical names ('embed', 'mlp', 'heads', ...) through
`nnx.with_partitioning`; `config.mesh.rules` maps each logical name to mesh axes. Keeping the
mapping in the config (as MaxText does) lets one model run data-parallel on a laptop and
FSDP + tensor-parallel on a pod without touching model code.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

# Where Flax keeps the logical names on a Variable, newest spelling first.
_METADATA_KEYS = ("out_sharding", "sharding_names", "sharding")


def rules_dict(rules: Iterable[Sequence[Any]]) -> dict[str, Any]:
  out: dict[str, Any] = {}
  for rule in rules:
    if len(rule) != 2:
      raise ValueError(f"config.mesh.rules entry {rule!r}: each rule is (logical_name, mesh_axes).")
    out.setdefault(rule[0], rule[1])  # first rule wins, so presets can prepend overrides
  return out


def logical_to_spec(names: Sequence[str | None] | None, rules: Mapping[str, Any], mesh: Mesh,
                    shape: Sequence[int] | None = None) -> P:
  """PartitionSpec for one array; axes that do not divide the dimension stay replicated.

  Silently replicating a non-dividing axis (rather than failing) matters for small demo models
  on big meshes, e.g. a 10-class head on a 4-way 'model' axis.
  """
  if not names:
    return P()
  used: set[str] = set()
  spec = []
  for i, name in enumerate(names):
    axes = rules.get(name) if name is not None else None
    if axes is None:
      spec.append(None)
      continue
    axes = (axes,) if isinstance(axes, str) else tuple(axes)
    axes = tuple(a for a in axes if a in mesh.shape and mesh.shape[a] > 1 and a not in used)
    size = int(np.prod([mesh.shape[a] for a in axes])) if axes else 1
    if not axes or (shape is not None and shape[i] % size):
      spec.append(None)
      continue
    used.update(axes)
    spec.append(axes[0] if len(axes) == 1 else axes)
  return P(*spec)


def _names_of(var: nnx.Variable) -> Sequence[str | None] | None:
  meta = var.get_metadata() if hasattr(var, "get_metadata") else {}
  for key in _METADATA_KEYS:
    names = meta.get(key)
    if names:
      return tuple(names)
  return None


def state_shardings(abstract_state: nnx.State, mesh: Mesh, rules: Mapping[str, Any]) -> Any:
  """A tree of NamedShardings matching `abstract_state` (a pure dict tree of arrays)."""

  def one(var):
    if isinstance(var, nnx.Variable):
      value = var.get_value() if hasattr(var, "get_value") else var.value
      spec = logical_to_spec(_names_of(var), rules, mesh, getattr(value, "shape", None))
      return var.replace(NamedSharding(mesh, spec))
    return NamedSharding(mesh, P())

  return jax.tree.map(one, abstract_state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def batch_spec(mesh: Mesh, rules: Mapping[str, Any]) -> P:
  axes = rules.get("batch", ("data",))
  axes = (axes,) if isinstance(axes, str) else tuple(axes)
  axes = tuple(a for a in axes if a in mesh.shape)
  return P(axes if len(axes) > 1 else (axes[0] if axes else None))


def batch_shards(mesh: Mesh, rules: Mapping[str, Any]) -> int:
  spec = batch_spec(mesh, rules)[0]
  axes = () if spec is None else ((spec,) if isinstance(spec, str) else spec)
  return int(np.prod([mesh.shape[a] for a in axes])) if axes else 1


def put_batch(batch: Mapping[str, Any], mesh: Mesh, rules: Mapping[str, Any]) -> dict:
  """Per-process numpy batch -> global jax arrays sharded along the leading (batch) axis."""
  spec = batch_spec(mesh, rules)

  def one(x):
    x = np.asarray(x)
    sharding = NamedSharding(mesh, P(*spec, *([None] * (x.ndim - 1))) if x.ndim else P())
    return jax.make_array_from_process_local_data(sharding, x)

  return jax.tree.map(one, dict(batch))
