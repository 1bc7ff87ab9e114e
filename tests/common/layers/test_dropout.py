"""Dropout / DropPath: identity in eval, keep statistics, per-sample masks, determinism."""
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.layers import dropout


def test_identity_without_train_or_rate_and_no_rngs_needed():
  x = jnp.arange(12.0).reshape(3, 4)
  for layer in (dropout.Dropout(0.5), dropout.DropPath(0.5)):
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(x))
  for layer in (dropout.Dropout(0.0), dropout.DropPath(0.0)):
    np.testing.assert_array_equal(np.asarray(layer(x, train=True)), np.asarray(x))
  assert not nnx.state(dropout.Dropout(0.5))  # no RNG stream, no state


def test_missing_rngs_in_training_is_a_clear_error():
  for layer in (dropout.Dropout(0.5), dropout.DropPath(0.5)):
    with pytest.raises(ValueError, match="rngs=None"):
      layer(jnp.ones((2, 3)), train=True)


def test_dropout_statistics_and_determinism():
  x = jnp.ones((200, 100))
  y = np.asarray(dropout.Dropout(0.25)(x, train=True, rngs=nnx.Rngs(dropout=0)))
  assert set(np.unique(y).tolist()) <= {0.0, float(np.float32(1) / np.float32(0.75))}
  assert abs((y == 0).mean() - 0.25) < 0.01
  assert abs(y.mean() - 1.0) < 0.02  # inverted dropout keeps the expectation
  again = np.asarray(dropout.Dropout(0.25)(x, train=True, rngs=nnx.Rngs(dropout=0)))
  np.testing.assert_array_equal(y, again)
  other = np.asarray(dropout.Dropout(0.25)(x, train=True, rngs=nnx.Rngs(dropout=1)))
  assert (other != y).any()
  shared = np.asarray(dropout.dropout(x, 0.5, train=True, rngs=nnx.Rngs(dropout=0),
                                      broadcast_dims=(0,)))
  assert (shared == shared[:1]).all()  # one mask shared along axis 0
  np.testing.assert_array_equal(
      np.asarray(dropout.dropout(x, 1.0, train=True, rngs=nnx.Rngs(dropout=0))), 0.0)


def test_drop_path_drops_whole_samples():
  x = jnp.ones((4000, 3, 5))
  y = np.asarray(dropout.DropPath(0.3)(x, train=True, rngs=nnx.Rngs(dropout=0)))
  per_sample = y.reshape(4000, -1)
  assert ((per_sample == 0).all(1) | (per_sample == per_sample[:, :1]).all(1)).all()
  dropped = (per_sample == 0).all(1)
  assert abs(dropped.mean() - 0.3) < 0.03
  np.testing.assert_allclose(per_sample[~dropped], 1 / 0.7, rtol=1e-6)
  again = np.asarray(dropout.drop_path(x, 0.3, train=True, rngs=nnx.Rngs(dropout=0)))
  np.testing.assert_array_equal(y, again)
  with pytest.raises(ValueError, match="drop path rate"):
    dropout.DropPath(1.0)


def test_each_call_draws_a_fresh_key():
  rngs = nnx.Rngs(dropout=0)
  layer = dropout.Dropout(0.5)
  a = np.asarray(layer(jnp.ones(64), train=True, rngs=rngs))
  b = np.asarray(layer(jnp.ones(64), train=True, rngs=rngs))
  assert (a != b).any()
