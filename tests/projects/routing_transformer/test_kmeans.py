"""The online k-means update and commitment loss against a direct numpy reading of spec §1.3."""
import jax
import jax.numpy as jnp
import numpy as np

from projects.routing_transformer import kmeans


def _numpy_update(x, means, ema_means, ema_count, decay, eps=1e-5):
  b, h, n, d = x.shape
  k = means.shape[1]
  new_means = np.zeros_like(ema_means)
  new_ema_means = np.zeros_like(ema_means)
  new_count = np.zeros_like(ema_count)
  for hh in range(h):
    count = np.zeros(k)
    dw = np.zeros((k, d))
    for bb in range(b):
      for s in range(n):
        c = int(np.argmax(means[hh] @ x[bb, hh, s]))   # assignment by dot product
        count[c] += 1
        dw[c] += x[bb, hh, s]
    new_count[hh] = decay * ema_count[hh] + (1 - decay) * count
    new_ema_means[hh] = decay * ema_means[hh] + (1 - decay) * dw
    total = new_count[hh].sum()
    cnt = (new_count[hh] + eps) / (total + k * eps) * total   # Laplace smoothing
    new_means[hh] = new_ema_means[hh] / cnt[:, None]
  return new_means, new_ema_means, new_count


def test_ema_update_matches_numpy():
  rs = np.random.RandomState(0)
  x = rs.randn(2, 3, 10, 4).astype(np.float32)
  means = rs.randn(3, 5, 4).astype(np.float32)
  ema_means = rs.randn(3, 5, 4).astype(np.float32)
  ema_count = rs.rand(3, 5).astype(np.float32) * 3
  ema_count[0, 2] = 0.0  # an empty, never-used cluster: smoothing keeps the division finite
  _, onehot = kmeans.assign(x, means)
  got = kmeans.ema_update(x, onehot, ema_means, ema_count, decay=0.9)
  want = _numpy_update(x.astype(np.float64), means, ema_means, ema_count, 0.9)
  for g, w in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), w, rtol=2e-4, atol=1e-5)


def test_commitment_loss_and_its_gradient():
  rs = np.random.RandomState(1)
  x = rs.randn(1, 2, 6, 4).astype(np.float32)
  means = rs.randn(2, 3, 4).astype(np.float32)
  _, onehot = kmeans.assign(x, means)
  assigned = np.einsum("bhnk,hkd->bhnd", np.asarray(onehot), means)
  want = np.mean((x - assigned) ** 2)
  np.testing.assert_allclose(float(kmeans.commitment_loss(x, onehot, means)), want, rtol=1e-5)
  # The centroids are behind a stop-gradient: only x is pulled towards them.
  g_means = jax.grad(lambda m: kmeans.commitment_loss(x, onehot, m))(jnp.asarray(means))
  assert not np.any(np.asarray(g_means))


def test_init_means_are_layer_normed():
  means = np.asarray(kmeans.init_means(jax.random.key(0), 2, 3, 16))
  np.testing.assert_allclose(means.mean(-1), 0.0, atol=1e-5)
  np.testing.assert_allclose(means.var(-1), 1.0, atol=1e-3)
