"""Reading per-layer statistics that layers sow into `nnx.Intermediate`.

A loss or evaluator runs the model, pops the intermediates (`nnx.pop(model, nnx.Intermediate)`,
inside the same jit) and turns them into named per-layer arrays with `layer_stats`. Popping also
leaves the model without the extra attributes, so the next call starts clean.

Layer names come from where the sowing module lives: the list attribute holding the layers and
the index become 'layer_<i>', prefixed by the path above it, and module names below the index
are dropped:

    ('layers', 3, 'mlp', 'act_nonzero')             -> 'layer_3'
    ('encoder', 'layers', 0, 'mlp', 'act_nonzero')  -> 'encoder_layer_0'
    ('mlp', 'act_nonzero')                           -> 'mlp'
    ('act_nonzero',)  (sown by the root module)      -> 'root'
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


def _layer_name(path: tuple[Any, ...]) -> str:
  index_pos = [i for i, p in enumerate(path) if isinstance(p, int)]
  if not index_pos:
    return "_".join(str(p) for p in path) or "root"
  i = index_pos[-1]
  prefix = [str(p) for p in path[:max(i - 1, 0)]]
  return "_".join(prefix + [f"layer_{path[i]}"])


def _sort_key(item: tuple[tuple[Any, ...], Any]):
  return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in item[0])


def layer_stats(intermediates: nnx.State, name: str = "act_nonzero") -> dict[str, jax.Array]:
  """Maps every sown value called `name` to its layer name (see module doc), in layer order.

  A module called several times in one forward sows a tuple of values; they are averaged.
  Raises ValueError if two modules would get the same layer name.
  """
  found = []
  for path, value in nnx.to_flat_state(intermediates):
    if path and path[-1] == name:
      value = value.get_value() if isinstance(value, nnx.Variable) else value
      values = value if isinstance(value, tuple) else (value,)
      found.append((tuple(path[:-1]), jnp.mean(jnp.stack(values), axis=0)))
  out: dict[str, jax.Array] = {}
  for path, value in sorted(found, key=_sort_key):
    key = _layer_name(path)
    if key in out:
      raise ValueError(f"Two modules sow {name!r} under the layer name {key!r}; give the layers "
                       "distinct list attributes.")
    out[key] = value
  return out


def pop_layer_stats(model: nnx.Module, name: str = "act_nonzero") -> dict[str, jax.Array]:
  """Pops every `nnx.Intermediate` from `model` and returns `layer_stats(..., name)`."""
  return layer_stats(nnx.pop(model, nnx.Intermediate), name)
