"""The train state: a plain dict pytree, created under jax.jit straight into its shardings.

Layout (every leaf a jax.Array):
  step            int32 scalar
  params          pure dict of the model's nnx.Param values
  model_state     pure dict of every other model variable (batch stats, k-means centroids, ...)
  opt_state       optax state over `params`
  ema_params      (only with config.optimizer.ema_decay > 0)
  health          first non-finite step (-1 if none), its cause, and the count of skipped steps

Pure dicts (not nnx.State objects) keep the checkpoint format independent of Flax internals,
so any project's checkpoint restores from its config alone (common.eval).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from common.train import sharding as sharding_lib

# Model variables that are per-forward scratch, never state to carry between steps.
TRANSIENT = nnx.Intermediate


def non_param_filter():
  return nnx.Not(nnx.Any(nnx.Param, TRANSIENT))


@dataclasses.dataclass
class ModelSpec:
  """Everything static about a model: how to rebuild it from the state's pure dicts."""
  graphdef: Any
  abstract_params: nnx.State
  abstract_rest: nnx.State

  def merge(self, params: dict, rest: dict) -> nnx.Module:
    return nnx.merge(self.graphdef, params, rest)


def model_spec(build_model: Callable[[nnx.Rngs], nnx.Module], seed: int) -> ModelSpec:
  abstract = nnx.eval_shape(lambda: build_model(nnx.Rngs(seed)))
  graphdef, params, rest = nnx.split(abstract, nnx.Param, non_param_filter())
  return ModelSpec(graphdef, params, rest)


def _pure(state: nnx.State) -> dict:
  return nnx.to_pure_dict(state)


def init_state(build_model, tx, *, seed: int, ema: bool):
  """Builds a fresh state (traceable: call under jax.jit)."""
  return state_from_model(build_model(nnx.Rngs(seed)), tx, ema=ema)


def state_from_model(model: nnx.Module, tx, *, ema: bool = False) -> dict:
  """Step 0 of a run whose weights are `model`'s (fresh optimiser, clean health record)."""
  _, params, rest = nnx.split(model, nnx.Param, non_param_filter())
  params, rest = _pure(params), _pure(rest)
  state = {
      "step": jnp.zeros((), jnp.int32),
      "params": params,
      "model_state": rest,
      "opt_state": tx.init(params),
      "health": {"first_nonfinite_step": jnp.full((), -1, jnp.int32),
                 "first_nonfinite_cause": jnp.zeros((), jnp.int32),
                 "skipped_steps": jnp.zeros((), jnp.int32)},
  }
  if ema:
    state["ema_params"] = jax.tree.map(jnp.copy, params)
  return state


def abstract_state_and_shardings(spec: ModelSpec, build_model, tx, *, seed: int, ema: bool,
                                 mesh: Mesh, rules) -> tuple[Any, Any]:
  """Shapes of the state and the NamedSharding of every leaf.

  Parameters follow their logical-axis metadata; optimiser moments that mirror a parameter's
  shape inherit its sharding (so FSDP shards Adam's moments too); everything else replicates.
  """
  abstract = jax.eval_shape(lambda: init_state(build_model, tx, seed=seed, ema=ema))
  param_sh = _pure(sharding_lib.state_shardings(spec.abstract_params, mesh, rules))
  rest_sh = _pure(sharding_lib.state_shardings(spec.abstract_rest, mesh, rules))
  replicated = NamedSharding(mesh, P())

  # Optimiser leaves are matched to parameters by path suffix: optax nests a copy of the params
  # tree (mu, nu, ...) inside its state, so a moment's key path ends with its parameter's path.
  by_path = {tuple(_key(k) for k in path): (leaf_sh, leaf_abs.shape) for (path, leaf_sh), leaf_abs in
             zip(jax.tree_util.tree_flatten_with_path(param_sh)[0],
                 jax.tree.leaves(abstract["params"]))}

  def opt_leaf(path, leaf):
    keys = tuple(_key(k) for k in path)
    for n in range(len(keys)):
      hit = by_path.get(keys[n:])
      if hit is not None and hit[1] == leaf.shape:
        return hit[0]
    return replicated

  shardings = {
      "step": replicated,
      "params": param_sh,
      "model_state": rest_sh,
      "opt_state": jax.tree_util.tree_map_with_path(opt_leaf, abstract["opt_state"]),
      "health": jax.tree.map(lambda _: replicated, abstract["health"]),
  }
  if ema:
    shardings["ema_params"] = param_sh
  return abstract, shardings


def _key(k) -> Any:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return getattr(k, attr)
  return str(k)


def with_shardings(abstract, shardings):
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                      abstract, shardings)


def count_params(abstract_params: Any) -> int:
  return int(sum(x.size for x in jax.tree.leaves(abstract_params)))
