"""Causal generalized-ReLU Performer against the direct quadratic formula."""
import jax
import numpy as np
import pytest

from projects.sea import performer


def reference(q, k, v, proj):
  phi = lambda x: np.maximum((x.shape[-1] ** -0.25 * x) @ proj.T, 0) + 1e-3  # noqa: E731
  qf, kf = phi(q), phi(k)
  a = np.tril(qf @ np.swapaxes(kf, -1, -2))
  den = a.sum(-1) + 1e-6 * qf.sum(-1)
  return (a @ v) / den[..., None]


@pytest.mark.parametrize("t,chunk", [(50, 16), (9, 64)])
def test_causal_performer_matches_quadratic_form(t, chunk):
  rng = np.random.default_rng(t)
  q, k = rng.standard_normal((2, 2, 2, t, 8)).astype(np.float32)
  v = rng.standard_normal((2, 2, t, 16)).astype(np.float32)
  proj = rng.standard_normal((5, 8)).astype(np.float32)
  @jax.jit
  def run(q, k, v, proj):
    feats = lambda x: performer.generalized_relu_features(x, proj)  # noqa: E731
    return performer.causal_linear_attention(feats(q), feats(k), v, chunk_size=chunk)
  out = run(q, k, v, proj)
  np.testing.assert_allclose(np.asarray(out), reference(q.astype(np.float64), k, v, proj),
                             rtol=2e-5, atol=2e-5)


def test_nb_features_and_errors():
  assert performer.nb_features_for(64, 8) == 33  # int(64 ln 64 / 8), as the golden case
  with pytest.raises(ValueError, match="head_dim=1"):
    performer.nb_features_for(1, 8)
  with pytest.raises(ValueError, match="performer_nb_factor=100"):
    performer.nb_features_for(4, 100)
  with pytest.raises(ValueError, match="chunk_size=0"):
    ones = np.ones((2, 1))
    performer.causal_linear_attention(ones, ones, ones, chunk_size=0)


def test_orthogonal_random_matrix_blocks():
  make = jax.jit(performer.gaussian_orthogonal_random_matrix, static_argnums=(1, 2))
  m = np.asarray(make(jax.random.key(0), 10, 4), np.float64)
  assert m.shape == (10, 4)
  unit = m / np.linalg.norm(m, axis=1, keepdims=True)
  np.testing.assert_allclose(unit[:4] @ unit[:4].T, np.eye(4), atol=1e-5)
  np.testing.assert_allclose(unit[8:] @ unit[8:].T, np.eye(2), atol=1e-5)
