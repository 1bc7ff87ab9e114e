"""Prefix sums: counts along the last axis and float sums along any axis, against numpy."""
import jax
import numpy as np
import pytest

from common.layers import prefix_sums


@pytest.mark.parametrize("shape", [(3, 1), (2, 5, 37), (1, 1024), (2, 3000)])
def test_inclusive_count_equals_cumsum(shape):
  rng = np.random.default_rng(sum(shape))
  bits = rng.random(shape) < 0.3
  counts = rng.integers(0, 17, shape)  # SEA's keys per cell: small non-negative ints
  for x in (bits, counts):
    got = np.asarray(jax.jit(prefix_sums.inclusive_count)(x))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, np.cumsum(x, axis=-1))


@pytest.mark.parametrize("shape,axis",
                         [((7,), 0), ((2, 1000, 3), 1), ((3, 5, 64), -2), ((4, 9), -1)])
def test_prefix_sum_equals_cumsum(shape, axis):
  rng = np.random.default_rng(len(shape) + shape[0])
  x = rng.normal(size=shape).astype(np.float32)
  got = np.asarray(jax.jit(lambda a: prefix_sums.prefix_sum(a, axis))(x))
  assert got.dtype == np.float32
  np.testing.assert_allclose(got, np.cumsum(x.astype(np.float64), axis=axis), rtol=1e-5,
                             atol=1e-4)
  ints = rng.integers(-5, 17, shape).astype(np.int32)
  np.testing.assert_array_equal(np.asarray(prefix_sums.prefix_sum(ints, axis)),
                                np.cumsum(ints, axis=axis))
