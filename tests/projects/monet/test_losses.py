"""Shifted cross-entropy and the uniformity / ambiguity auxiliary losses (paper eq. 16-17)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from projects.monet.losses import ambiguity_loss, causal_lm_loss, routing_aux_losses, uniformity_loss


def test_causal_lm_loss_matches_numpy_and_ignores_minus_100():
  rng = np.random.default_rng(0)
  logits = rng.standard_normal((2, 5, 7)).astype(np.float32)
  labels = rng.integers(0, 7, (2, 5))
  labels[1, 3] = -100
  lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  terms = [-lp[b, t, labels[b, t + 1]] for b in range(2) for t in range(4) if labels[b, t + 1] != -100]
  np.testing.assert_allclose(causal_lm_loss(jnp.asarray(logits), jnp.asarray(labels)), np.mean(terms),
                             rtol=1e-6)


def test_uniform_usage_gives_log_e_and_one_hot_gives_zero_ambiguity():
  b, t, h, e = 2, 8, 3, 16
  one_hot = jax.nn.one_hot(jnp.arange(b * t * h).reshape(b, t, h) % e, e)  # every expert used equally
  np.testing.assert_allclose(uniformity_loss(one_hot, one_hot), math.log(e), rtol=1e-5)
  np.testing.assert_allclose(ambiguity_loss(one_hot, one_hot), 0.0, atol=1e-7)
  flat = jnp.full((b, t, h, e), 1.0 / e)
  np.testing.assert_allclose(ambiguity_loss(flat, flat), 1 - 1 / e, rtol=1e-6)
  collapsed = jax.nn.one_hot(jnp.zeros((b, t, h), jnp.int32), e)
  assert uniformity_loss(collapsed, collapsed) > 5 * math.log(e)  # log(eps) dominates


def test_mask_excludes_padding_and_layers_without_router_are_skipped():
  e = 4
  g_real = jax.nn.one_hot(jnp.array([[[0], [1], [2], [3]]]), e)  # (1, 4, 1, 4), uniform usage
  g_pad = g_real.at[0, 3].set(jax.nn.one_hot(jnp.array([0]), e))
  mask = jnp.array([[1, 1, 1, 0]])
  masked = uniformity_loss(g_pad, g_pad, mask=mask)
  unmasked = uniformity_loss(g_real[:, :3], g_real[:, :3])
  np.testing.assert_allclose(masked, unmasked, rtol=1e-6)
  losses = routing_aux_losses([(g_real, g_real), None, (g_real, g_real)])
  np.testing.assert_allclose(losses["uniformity"], math.log(e), rtol=1e-5)
  summed = routing_aux_losses([(g_real, g_real), None, (g_real, g_real)], reduce="sum")
  np.testing.assert_allclose(summed["uniformity"], 2 * math.log(e), rtol=1e-5)
  with pytest.raises(ValueError, match="reduce"):
    routing_aux_losses([(g_real, g_real)], reduce="max")


def test_aux_losses_have_gradients_through_the_router_softmax():
  z = jax.random.normal(jax.random.key(0), (2, 3, 2, 8))
  loss = lambda z: sum(routing_aux_losses([(jax.nn.softmax(z), jax.nn.softmax(2 * z))]).values())
  grad = jax.jit(jax.grad(loss))(z)
  assert np.all(np.isfinite(grad)) and np.any(grad != 0)
