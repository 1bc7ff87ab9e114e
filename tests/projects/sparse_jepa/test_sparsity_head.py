"""The SparseJEPA penalty and latent metrics, checked against numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import common  # noqa: F401
from projects.sparse_jepa import losses, model
from projects.sparse_jepa.sparsity_head import (SparsityConfig, SparsityHead,
                                                gaussian_total_correlation, prox_group_lasso)

D = 12


@pytest.fixture
def make_head(build):
  def make(**kw):
    cfg = SparsityConfig(**{**dict(num_latent_groups=3, latent_group_size=2, num_output_groups=3,
                                   lasso_weight=0.1, kl_weight=0.5, recon_weight=2.0), **kw})
    # Random non-zero biases too, so that every term is exercised.
    return build(lambda: SparsityHead(D, cfg, rngs=nnx.Rngs(0)))
  return make


def _np_tc(cov, k):
  g = cov.shape[0] // k
  parts = sum(np.linalg.slogdet(cov[i * k:(i + 1) * k, i * k:(i + 1) * k])[1] for i in range(g))
  return 0.5 * (parts - np.linalg.slogdet(cov)[1])


@pytest.mark.parametrize("mode", ["subgradient", "proximal"])
def test_forward_losses_and_metrics_match_numpy(make_head, mode):
  head = make_head(lasso_mode=mode)
  s = np.random.default_rng(0).normal(size=(2, 5, D)).astype(np.float32)
  key = jax.random.key(1)
  @nnx.jit
  def run(head, s, rngs):
    out = head(s, train=True, rngs=rngs)
    return out, head.metrics(out)

  with jax.default_matmul_precision("highest"):
    out, metrics = run(head, jnp.asarray(s), nnx.Rngs(dropout=key))
  w_post = np.asarray(head.posterior.kernel[...], np.float64)
  stats = s @ w_post + np.asarray(head.posterior.bias[...])
  mu, logvar = stats[..., :6], stats[..., 6:]
  eps = np.asarray(jax.random.normal(nnx.Rngs(dropout=key).dropout(), mu.shape))
  z = mu + np.exp(0.5 * logvar) * eps
  w = np.asarray(head.decoder[...], np.float64)  # (P, K, D/P)
  bias = np.asarray(head.decoder_bias[...]).reshape(3, 4)
  recon = (np.einsum("...k,pkh->...ph", z, w) + bias).reshape(2, 5, D)
  kl_unit = 0.5 * (mu**2 + np.exp(logvar) - 1 - logvar)
  recon_loss = 0.5 * np.mean((s - recon)**2)
  kl_loss = kl_unit.sum(-1).mean() / D
  norms = np.sqrt((w.reshape(3, 3, 2, 4)**2).sum((2, 3)))  # (P, G)
  lasso = norms.sum()
  np.testing.assert_allclose(out["z"], z, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out["recon"], recon, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out["kl_per_unit"], kl_unit, rtol=1e-4, atol=1e-6)
  losses_ = out["losses"]
  for name, ref in (("recon", recon_loss), ("kl", kl_loss), ("lasso", lasso)):
    np.testing.assert_allclose(losses_[name], ref, rtol=1e-5, err_msg=name)
  # 'proximal' leaves the lasso to the trainer's project_params step: not in the loss.
  in_loss = 0.1 * lasso if mode == "subgradient" else 0.0
  np.testing.assert_allclose(losses_["penalty"], 2.0 * recon_loss + 0.5 * kl_loss + in_loss,
                             rtol=1e-5)
  # Metrics.
  flat_kl, flat_mu = kl_unit.reshape(-1, 6), mu.reshape(-1, 6)
  np.testing.assert_allclose(metrics["active_units"], np.mean(flat_kl.mean(0) > 0.01))
  np.testing.assert_allclose(metrics["active_groups_per_example"],
                             np.mean(flat_kl.reshape(-1, 3, 2).sum(-1) > 0.01))
  cov = np.cov(flat_mu.T, bias=True) + np.diag(np.exp(logvar.reshape(-1, 6)).mean(0))
  np.testing.assert_allclose(metrics["total_correlation"], _np_tc(cov + 1e-6 * np.eye(6), 2),
                             rtol=1e-3, atol=1e-5)
  assert float(metrics["pruned_blocks"]) == 0.0 and float(metrics["dead_groups"]) == 0.0


def test_pruned_blocks_dead_groups_and_prox(make_head):
  head = make_head()
  w = np.asarray(head.decoder[...]).copy()
  w[:, 0:2, :] = 0.0        # latent group 0 unused by every output chunk: a dead group
  w[1, 2:4, :] = 1e-5       # latent group 1 cut from chunk 1 only
  head.decoder.set_value(jnp.asarray(w))
  m = nnx.jit(lambda h, x: h.metrics(h(x)))(head, jnp.ones((4, D)))
  assert float(m["pruned_blocks"]) == pytest.approx(4 / 9)
  assert float(m["dead_groups"]) == pytest.approx(1 / 3)
  # Block soft-thresholding: exact zeros below the threshold, shrunk norms above it.
  rng = np.random.default_rng(0)
  w = rng.normal(size=(2, 4, 3)).astype(np.float32)
  w[0, :2] *= 0.01
  out = np.asarray(prox_group_lasso(jnp.asarray(w), 2, 0.5))
  assert np.all(out[0, :2] == 0)
  for p, g in ((0, 1), (1, 0), (1, 1)):
    blk = w[p, 2 * g:2 * g + 2]
    np.testing.assert_allclose(out[p, 2 * g:2 * g + 2],
                               blk * (1 - 0.5 / np.linalg.norm(blk)), rtol=1e-5)


def test_total_correlation_numpy_and_independence():
  rng = np.random.default_rng(2)
  a = rng.normal(size=(6, 6))
  cov = a @ a.T + np.eye(6)
  np.testing.assert_allclose(gaussian_total_correlation(jnp.asarray(cov), 3), _np_tc(cov, 3),
                             rtol=1e-4)
  block = np.zeros((6, 6))
  block[:3, :3], block[3:, 3:] = cov[:3, :3], cov[3:, 3:]
  assert abs(float(gaussian_total_correlation(jnp.asarray(block), 3))) < 1e-4
  assert float(gaussian_total_correlation(jnp.asarray(cov), 3)) > 0


def test_gradient_switches(make_head):
  s = jnp.asarray(np.random.default_rng(3).normal(size=(4, D)), jnp.float32)

  def grad_s(**kw):
    head = make_head(**kw)
    return jax.grad(lambda x: head(x)["losses"]["penalty"])(s)

  g_stop, g_free, g_detach = grad_s(), grad_s(stop_gradient_target=False), grad_s(
      detach_input=True, stop_gradient_target=True)
  assert np.all(np.asarray(g_detach) == 0)
  assert np.abs(np.asarray(g_stop)).max() > 0
  assert np.abs(np.asarray(g_free - g_stop)).max() > 1e-6


def test_config_validation():
  with pytest.raises(ValueError, match="attach='target'"):
    SparsityConfig(attach="target")
  with pytest.raises(ValueError, match="num_latent_groups"):
    SparsityConfig(num_latent_groups=0)
  with pytest.raises(ValueError, match="num_output_groups=5 does not divide embed_dim=12"):
    nnx.eval_shape(lambda: SparsityHead(12, SparsityConfig(num_output_groups=5),
                                        rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match="lasso_weight"):
    SparsityConfig(lasso_weight=-1.0)


@pytest.mark.parametrize("attach,pooling,hidden", [("context", "token", 0), ("full", "mean", 8)])
def test_sparse_jepa_loss_trains_encoder_not_target(build, attach, pooling, hidden):
  kw = dict(img_size=8, patch_size=4, embed_dim=12, depth=1, num_heads=2)
  enc = build(lambda: model.VisionTransformer(**kw, rngs=nnx.Rngs(0)), seed=1, std=0.1)
  tgt = build(lambda: model.VisionTransformer(**kw, rngs=nnx.Rngs(0)), seed=2, std=0.1)
  pred = build(lambda: model.VisionTransformerPredictor(
      num_patches=4, embed_dim=12, predictor_embed_dim=8, depth=1, num_heads=2,
      rngs=nnx.Rngs(0)), seed=3, std=0.1)
  head = build(lambda: SparsityHead(12, SparsityConfig(
      attach=attach, pooling=pooling, num_output_groups=2, decoder_hidden_dim=hidden),
      rngs=nnx.Rngs(0)), seed=4, std=0.1)
  imgs = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 3)), jnp.float32)
  m_enc, m_pred = np.array([[[0, 1, 2], [1, 2, 3]]]), np.array([[[3], [0]], [[2], [1]]])

  def loss_fn(enc, head, tgt, rngs):
    return losses.sparse_jepa_loss(enc, pred, tgt, head, imgs, m_enc, m_pred, train=True,
                                   rngs=rngs)

  step = nnx.jit(nnx.value_and_grad(loss_fn, argnums=(0, 1, 2), has_aux=True))
  (total, metrics), grads = step(enc, head, tgt, nnx.Rngs(dropout=jax.random.key(0)))
  g_enc, g_head, g_tgt = (jax.tree.leaves(g) for g in grads)
  assert np.isfinite(float(total))
  np.testing.assert_allclose(total, metrics["ijepa_loss"] + metrics["sparsity/penalty"], rtol=1e-6)
  assert max(float(jnp.abs(g).max()) for g in g_enc) > 0
  assert max(float(jnp.abs(g).max()) for g in g_head) > 0
  assert max(float(jnp.abs(g).max()) for g in g_tgt) == 0
  assert {"sparsity/total_correlation", "sparsity/active_units"} <= set(metrics)


def test_train_without_rngs_is_an_error(make_head):
  head = make_head()
  with pytest.raises(ValueError, match="pass rngs"):
    head(jnp.ones((2, D)), train=True)
