"""Copies of modules whose weights are model state, not parameters.

A distillation teacher or an EMA target encoder holds the same weights as a trained module but
must never be a gradient target or an optimiser leaf: the trainer splits the model by nnx.Param,
so retyping those weights as another nnx.Variable subclass keeps them out of training while they
stay in the checkpointed, sharded model state (their logical-axis metadata is kept).
"""
from __future__ import annotations

from flax import nnx


def params_as(module: nnx.Module, variable_type: type[nnx.Variable]) -> nnx.Module:
  """A copy of `module` whose nnx.Params are `variable_type`s (values and metadata kept).

  Other variables (batch statistics, non-Param tables) keep their type.
  """
  copy = nnx.clone(module)
  for _, sub in nnx.iter_modules(copy):
    for name, var in list(vars(sub).items()):
      if isinstance(var, nnx.Param):
        setattr(sub, name, variable_type(var.get_value(), **var.get_metadata()))
  return copy
