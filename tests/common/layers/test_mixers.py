"""Every registered mixer (projects' included): shapes, causality, gradients, option errors;
'dense' against a hand-written attention and 'local' with a full window against 'dense'."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.layers import mixers

T, HIDDEN, HEADS = 64, 32, 2
SPEC = mixers.MixerSpec(hidden=HIDDEN, num_heads=HEADS, seq_len=T)
# Small options per mixer (T = 64, head_dim 16); a mixer not listed runs with its defaults.
OPTIONS = {
    "local": {"window": 32, "block": 16},
    "routing": {"window": 32, "query_block": 16, "memory_flange": 16},
    "region": {"region": 16, "top_regions": 2},
    "sea": {"k": 8, "predictor_length": 16},
}
# routing assigns tokens to clusters by a balanced top-`window` over the whole sequence, so
# whether an early token shares a cluster with another depends on later tokens: its selection
# is not causal (as in the paper). With window = T there is one cluster holding every token,
# the membership is fixed and what remains (the causal mask over sorted tokens, the local
# heads) must be strictly causal.
CAUSAL_OPTIONS = {**OPTIONS, "routing": {"window": T, "query_block": 16, "memory_flange": 16}}
NAMES = mixers.names()


def _x(seed=0, b=2):
  return jax.random.normal(jax.random.key(seed), (b, T, HIDDEN), jnp.float32)


def _build(name, options=None, seed=0):
  return mixers.build(name, SPEC, OPTIONS.get(name, {}) if options is None else options,
                      nnx.Rngs(seed))


def test_projects_register_theirs():
  assert {"dense", "local", "routing", "sea", "performer", "region"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_shape_finite_and_aux(name):
  y, aux = _build(name)(_x(), train=False)
  assert y.shape == (2, T, HIDDEN)
  assert np.isfinite(np.asarray(y)).all()
  assert aux.shape == () and aux.dtype == jnp.float32 and np.isfinite(float(aux))


@pytest.mark.parametrize("name", NAMES)
def test_causal(name):
  m = _build(name, CAUSAL_OPTIONS.get(name, {}))
  t = 37  # inside a block for every block size above
  x = _x()
  x2 = x.at[:, t + 1:].set(jax.random.normal(jax.random.key(1), (2, T - t - 1, HIDDEN)))
  y, _ = m(x, train=False)   # eval: routing's k-means means must not move between the calls
  y2, _ = m(x2, train=False)
  np.testing.assert_allclose(np.asarray(y2[:, :t + 1]), np.asarray(y[:, :t + 1]), atol=1e-5)
  assert not np.allclose(np.asarray(y2[:, t + 1:]), np.asarray(y[:, t + 1:]))


@pytest.mark.parametrize("name", NAMES)
def test_param_gradients(name):
  m = _build(name)
  r = jax.random.normal(jax.random.key(2), (2, T, HIDDEN))

  def loss(m):
    y, aux = m(_x(), train=True, rngs=nnx.Rngs(3))
    return jnp.sum(y * r) + aux

  grads = jax.tree.leaves(nnx.state(nnx.grad(loss)(m), nnx.Param))
  assert grads and all(np.isfinite(np.asarray(g)).all() for g in grads)
  assert any(np.abs(np.asarray(g)).max() > 0 for g in grads)


def test_unknown_mixer_names_the_registered():
  with pytest.raises(ValueError, match=r"'nope'.*'dense'.*'local'"):
    mixers.build("nope", SPEC, {}, nnx.Rngs(0))


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_is_named(name):
  with pytest.raises(ValueError, match="bogus_option"):
    _build(name, {**OPTIONS.get(name, {}), "bogus_option": 1})


def test_dense_matches_hand_written_attention():
  m = _build("dense")
  x = _x()
  wqkv, wo = m.proj.wqkv.kernel[...], m.proj.wo.kernel[...]
  heads = lambda a: a.reshape(2, T, HEADS, HIDDEN // HEADS)
  q, k, v = (heads(a) for a in jnp.split(x @ wqkv, 3, axis=-1))
  logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(HIDDEN // HEADS)
  logits = jnp.where(jnp.tril(jnp.ones((T, T), bool)), logits, -jnp.inf)
  o = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)
  want = o.reshape(2, T, HIDDEN) @ wo
  y, aux = m(x)
  np.testing.assert_allclose(np.asarray(y), np.asarray(want), atol=1e-5, rtol=1e-5)
  assert float(aux) == 0.0


def test_local_with_full_window_is_dense():
  dense = _build("dense")
  local = _build("local", {"window": T, "block": 16}, seed=1)
  nnx.update(local, nnx.state(dense, nnx.Param))
  x = _x()
  np.testing.assert_allclose(np.asarray(local(x)[0]), np.asarray(dense(x)[0]), atol=1e-5)
