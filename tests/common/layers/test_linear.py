"""Linear: numerics against numpy and nnx.Linear, torch-default init bounds, metadata."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.layers import initializers, keys, linear


def test_matches_numpy_and_nnx_linear():
  x = np.random.RandomState(0).randn(2, 3, 5).astype(np.float32)
  ours = linear.Linear(5, 4, kernel_init=nnx.initializers.lecun_normal(),
                       bias_init=nnx.initializers.normal(1.0), rngs=nnx.Rngs(0))
  ref = nnx.Linear(5, 4, kernel_init=nnx.initializers.lecun_normal(),
                   bias_init=nnx.initializers.normal(1.0), rngs=nnx.Rngs(0))
  # Same key order (kernel, then bias) as nnx.Linear: the same init from the same rngs.
  np.testing.assert_array_equal(np.asarray(ours.kernel[...]), np.asarray(ref.kernel[...]))
  np.testing.assert_array_equal(np.asarray(ours.bias[...]), np.asarray(ref.bias[...]))
  y = ours(jnp.asarray(x))
  np.testing.assert_array_equal(np.asarray(y), np.asarray(ref(jnp.asarray(x))))
  want = x @ np.asarray(ours.kernel[...]) + np.asarray(ours.bias[...])
  np.testing.assert_allclose(np.asarray(y), want, rtol=1e-5, atol=1e-5)


def test_torch_default_init_bounds():
  layer = linear.Linear(16, 300, rngs=keys.KeyStream(jax.random.key(0)))
  bound = 1 / math.sqrt(16)
  for p in (layer.kernel[...], layer.bias[...]):
    p = np.asarray(p)
    assert np.abs(p).max() <= bound and np.abs(p).max() > 0.9 * bound
  assert abs(np.asarray(layer.kernel[...]).std() - bound / math.sqrt(3)) < 0.01


def test_trunc_normal_init_is_absolute():
  init = initializers.trunc_normal(0.5)  # bounds +-2 are 4 sigmas at std 0.5
  w = np.asarray(init(jax.random.key(0), (20000,)))
  assert np.abs(w).max() <= 2.0 and abs(w.std() - 0.5) < 0.02
  w = np.asarray(initializers.trunc_normal(1.0)(jax.random.key(0), (20000,), jnp.bfloat16))
  assert np.abs(w).max() <= 2.0 and w.dtype == jnp.bfloat16


def test_options_axes_and_dtypes():
  layer = linear.Linear(3, 4, use_bias=False, kernel_axes=("embed", "mlp"),
                        dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  assert layer.bias is None
  assert layer.kernel.get_metadata()["out_sharding"] == ("embed", "mlp")
  assert layer.kernel.dtype == jnp.float32
  assert layer(jnp.ones((2, 3))).dtype == jnp.bfloat16
  layer = linear.Linear(3, 4, kernel_axes=("mlp", "embed"), rngs=nnx.Rngs(0))
  assert layer.bias.get_metadata()["out_sharding"] == ("embed",)
  with pytest.raises(ValueError, match="kernel_axes"):
    linear.Linear(3, 4, kernel_axes=("embed",), rngs=nnx.Rngs(0))


def test_columns_compute_a_slice_of_the_outputs():
  layer = linear.Linear(5, 6, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 3, 5))
  np.testing.assert_allclose(layer(x, columns=slice(2, None)), layer(x)[..., 2:], rtol=1e-6,
                             atol=1e-6)
  grads = jax.grad(lambda m: m(x, columns=slice(0, 4)).sum())(layer)
  assert np.all(np.asarray(grads.kernel[...])[:, 4:] == 0)  # the others get no gradient
  assert np.all(np.asarray(grads.bias[...])[4:] == 0) and np.all(
      np.asarray(grads.bias[...])[:4] == 6)
