"""Shared helpers for the SViT tests.

Models for unit tests are built abstractly and filled from numpy: initialising them for real
(eagerly or under jit) would compile every random initialiser, which costs far more CPU
than the tests themselves.
"""
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx


def materialise(build, seed: int = 0):
  """Returns the module `build()` makes, with random but well-scaled values, cheaply."""
  model = nnx.eval_shape(build)
  rng = np.random.default_rng(seed)
  new = []
  for path, var in nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))):
    shape, name = tuple(var.shape), path[-1]
    if name == "var":
      value = rng.uniform(0.5, 1.5, shape)
    elif name == "scale":
      value = 1.0 + 0.1 * rng.standard_normal(shape)
    else:
      fan_in = max(1, int(np.prod(shape[:-1])) if len(shape) > 1 else 1)
      value = rng.standard_normal(shape) / np.sqrt(fan_in)
    new.append((path, var.replace(jnp.asarray(value, var.dtype))))
  nnx.update(model, nnx.from_flat_state(new))
  return model


@pytest.fixture(scope="session")
def build():
  return materialise
