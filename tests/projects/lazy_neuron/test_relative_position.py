"""T5's relative position buckets on known values and against a scalar reference."""
import math

import jax.numpy as jnp
import numpy as np
from flax import nnx

from projects.lazy_neuron import relative_position


def _scalar_bucket(rel, bidirectional, num_buckets=32, max_distance=128):
  """Mesh TensorFlow's bucket function, one offset at a time in plain python."""
  ret, n = 0, -rel
  if bidirectional:
    num_buckets //= 2
    ret += num_buckets if n < 0 else 0
    n = abs(n)
  else:
    n = max(n, 0)
  max_exact = num_buckets // 2
  if n < max_exact:
    return ret + n
  large = max_exact + int(math.log(n / max_exact) / math.log(max_distance / max_exact)
                          * (num_buckets - max_exact))
  return ret + min(large, num_buckets - 1)


def test_known_values():
  rel = np.array([0, -1, 1, -7, -8, -16, -127, -128, -1000, 8, 200])
  got = relative_position.relative_position_bucket(rel, bidirectional=True)
  # Keys before the query use buckets 0..15, keys after it 16..31; 8 exact offsets per side.
  np.testing.assert_array_equal(got, [0, 1, 17, 7, 8, 10, 15, 15, 15, 24, 31])
  rel = np.array([5, 0, -3, -15, -16, -20, -127, -500])
  got = relative_position.relative_position_bucket(rel, bidirectional=False)
  # Causal: future keys share bucket 0; 16 exact offsets.
  np.testing.assert_array_equal(got, [0, 0, 3, 15, 16, 17, 31, 31])


def test_matches_scalar_reference_and_jax_arrays():
  rel = np.arange(-300, 301)
  for bidirectional in (True, False):
    want = [_scalar_bucket(int(r), bidirectional) for r in rel]
    np.testing.assert_array_equal(
        relative_position.relative_position_bucket(rel, bidirectional=bidirectional), want)
    np.testing.assert_array_equal(
        relative_position.relative_position_bucket(jnp.asarray(rel),
                                                   bidirectional=bidirectional), want)


def test_bias_module_looks_up_the_table():
  module = relative_position.RelativePositionBias(3, bidirectional=True, rngs=nnx.Rngs(0))
  bias = np.asarray(module(4, 6))
  assert bias.shape == (1, 3, 4, 6)
  table = np.asarray(module.embedding[...])
  buckets = relative_position.relative_position_bucket(
      np.arange(6)[None] - np.arange(4)[:, None], bidirectional=True)
  np.testing.assert_allclose(bias[0], np.transpose(table[buckets], (2, 0, 1)))
  assert module.embedding.get_metadata()["out_sharding"] == (None, "heads")
