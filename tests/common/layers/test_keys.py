"""The init-key stream: distinct, deterministic keys; one draw from nnx.Rngs; param metadata."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.layers import keys


def _data(key):
  return np.asarray(jax.random.key_data(key))


def test_keys_are_distinct_and_deterministic():
  a = keys.KeyStream(jax.random.key(0))
  b = keys.KeyStream(jax.random.key(0))
  drawn = [_data(a.params()) for _ in range(5)]
  assert len({d.tobytes() for d in drawn}) == 5
  for d in drawn:  # the same root gives the same sequence
    np.testing.assert_array_equal(d, _data(b()))
  other = keys.KeyStream(jax.random.key(1)).params()
  assert _data(other).tobytes() != drawn[0].tobytes()


def test_of_draws_once_and_passes_a_stream_through():
  rngs = nnx.Rngs(3)
  stream = keys.KeyStream.of(rngs)
  assert keys.KeyStream.of(stream) is stream
  np.testing.assert_array_equal(_data(stream.params()),
                                _data(jax.random.fold_in(nnx.Rngs(3).params(), 1)))
  for _ in range(3):  # drawing from the stream never touches the Rngs counter
    stream.params()
  np.testing.assert_array_equal(_data(rngs.params()), _data(_second_draw(3)))


def _second_draw(seed):
  r = nnx.Rngs(seed)
  r.params()
  return r.params()


def test_init_keys_rbg_depends_on_the_seed_only():
  k1 = keys.init_keys(nnx.Rngs(0), impl="rbg").params()
  k2 = keys.init_keys(nnx.Rngs(0), impl="rbg").params()
  k3 = keys.init_keys(nnx.Rngs(1), impl="rbg").params()
  assert jax.random.key_impl(k1) == jax.random.key_impl(jax.random.key(0, impl="rbg"))
  np.testing.assert_array_equal(_data(k1), _data(k2))
  assert _data(k1).tobytes() != _data(k3).tobytes()


def test_param_metadata_and_key_kinds():
  p = keys.param(nnx.initializers.normal(1.0), ("embed", "mlp"), keys.KeyStream(jax.random.key(0)),
                 (2, 3), jnp.bfloat16)
  assert p.dtype == jnp.bfloat16 and p.get_metadata()["out_sharding"] == ("embed", "mlp")
  ones = keys.param(nnx.initializers.ones, (None,), None, (4,))
  np.testing.assert_array_equal(np.asarray(ones[...]), np.ones(4))
  a = keys.param(nnx.initializers.normal(1.0), (None,), jax.random.key(5), (4,))
  b = keys.param(nnx.initializers.normal(1.0), (None,), jax.random.key(5), (4,))
  np.testing.assert_array_equal(np.asarray(a[...]), np.asarray(b[...]))
  with pytest.raises(ValueError, match="axes"):
    keys.param(nnx.initializers.ones, ("embed",), None, (2, 3))


def test_stream_traces_without_touching_rngs_state():
  def build():
    stream = keys.KeyStream.of(nnx.Rngs(0))
    return [keys.param(nnx.initializers.normal(1.0), (None,), stream, (2,)) for _ in range(3)]

  shapes = nnx.eval_shape(build)
  assert [tuple(p.shape) for p in shapes] == [(2,)] * 3
