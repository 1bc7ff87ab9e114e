"""Fast model construction for the sparse_jepa tests.

Eager NNX init compiles one small XLA program per parameter shape (seconds on a shared 2-core
CI box), so tests build shape-only models with nnx.eval_shape and fill them from numpy.
"""
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import common  # noqa: F401


def fill(module, seed: int = 0, std: float = 0.3):
  """Sets every variable of a (possibly abstract) module to N(0, std^2) values, in place."""
  rng = np.random.default_rng(seed)
  for _, var in nnx.state(module, nnx.Variable).flat_state():
    var.set_value(jnp.asarray(rng.normal(size=var.shape) * std, var.dtype))
  return module


@pytest.fixture
def build():
  """build(factory, seed=0, std=0.3) -> a module from nnx.eval_shape(factory), filled by `fill`."""
  return lambda factory, seed=0, std=0.3: fill(nnx.eval_shape(factory), seed, std)
