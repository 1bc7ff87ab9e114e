"""Moving dense OPT weights between models: HF checkpoints, a trained dense run, a distillation model.

A "dense tree" is the nested dict of an OPT's non-SEA variables under their module paths
({'embed_tokens': {'embedding': ...}, 'layers': {0: {'self_attn': {'q_proj': {'kernel': ...}}}}}),
as third_party.hf_opt.convert_tensors returns it. It fits an OPT whatever its SEA layers are,
and whatever variable type holds it (trainable nnx.Param or the teacher's FrozenWeight).
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import nnx

SEA_KEY = "sea"  # OPTAttention.sea: the SEA estimator, absent from dense trees
# OPTAttention's student-only modules (SEA; the 'performer' student's fixed projection).
STUDENT_KEYS = (SEA_KEY, "performer")


def _is_dense_path(path: tuple) -> bool:
  return not any(key in path for key in STUDENT_KEYS)


def dense_tree(model: nnx.Module) -> dict:
  """The dense (non-SEA, non-Performer) variables of an OPT as a nested dict of their values (traceable)."""
  out: dict = {}
  for path, var in nnx.iter_graph(model):
    if isinstance(var, nnx.Variable) and _is_dense_path(path):
      node = out
      for key in path[:-1]:
        node = node.setdefault(key, {})
      node[path[-1]] = var.get_value()
  return out


def _lookup(tree: dict, path: tuple) -> Any:
  node = tree
  for key in path:
    if not isinstance(node, dict) or key not in node:
      return None
    node = node[key]
  return node


def load_dense(model: nnx.Module, tree: dict) -> None:
  """Writes `tree` into `model`'s dense variables in place; every leaf must land, shapes equal."""
  used = 0
  for path, var in nnx.iter_graph(model):
    if not isinstance(var, nnx.Variable) or not _is_dense_path(path):
      continue
    value = _lookup(tree, path)
    if value is None:
      raise KeyError(f"the weights have no entry for {'.'.join(map(str, path))}: they are not "
                     "an OPT of this architecture.")
    old = var.get_value()
    if tuple(np.shape(value)) != tuple(old.shape):
      raise ValueError(f"{'.'.join(map(str, path))}: weights have shape {np.shape(value)}, the "
                       f"model {old.shape}; the config and the checkpoint disagree.")
    var.set_value(jax.numpy.asarray(value, old.dtype))
    used += 1
  total = len(jax.tree.leaves(tree))
  if used != total:
    raise ValueError(f"{total - used} of {total} weights found no variable in the model: the "
                     "checkpoint has more layers or modules than the config.")
