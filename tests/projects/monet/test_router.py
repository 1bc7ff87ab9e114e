"""Router semantics beyond the golden (eval) cases: threshold constant, train=True BatchNorm."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from projects.monet.router import MonetRouter, routing_threshold
from tests.projects.monet import tiny


def test_threshold_is_the_official_scipy_constant():
  assert routing_threshold(4, 16) == 0.6744897501960817       # golden cases
  assert abs(routing_threshold(8, 512) - 2.1538746940614564) < 1e-14  # released checkpoints


def test_train_mode_uses_batch_statistics_and_updates_running_ones():
  cfg = tiny.config(hidden_size=32, num_attention_heads=2)
  router = MonetRouter(cfg, rngs=nnx.Rngs(0))
  router.w1[...] = router.w1[...] * 10.0
  x = jax.random.normal(jax.random.key(1), (2, 5, 32))
  z = np.asarray(jnp.einsum("btd,dhe->bthe", x, router.w1[...]), np.float64)
  mean = z.mean(axis=(0, 1, 3))
  var = z.var(axis=(0, 1, 3))
  # statistic updates propagate out of nnx.jit
  call = nnx.jit(lambda r, x, train: r(x, train=train), static_argnums=2)
  with jax.default_matmul_precision("highest"):
    g1, _ = call(router, x, True)
  count = 2 * 5 * cfg.moe_experts
  np.testing.assert_allclose(router.norm1.mean[...], 0.1 * mean, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(router.norm1.var[...], 0.9 + 0.1 * var * count / (count - 1),
                             rtol=1e-5)
  # Selection from the batch-normalised logits, softmax over the raw logits.
  n = (z - mean[:, None]) / np.sqrt(var[:, None] + cfg.bn_eps)
  keep = n >= np.minimum(n.max(-1, keepdims=True), routing_threshold(cfg.moe_topk, cfg.moe_experts))
  expect = np.where(keep, np.exp(z - z.max(-1, keepdims=True)), 0.0)
  expect /= expect.sum(-1, keepdims=True)
  np.testing.assert_allclose(g1, expect, atol=1e-5)
  # train=False (the default) leaves the statistics alone.
  before = np.asarray(router.norm1.var[...])
  call(router, x, False)
  np.testing.assert_array_equal(router.norm1.var[...], before)


def test_stats_are_batch_stats_not_params():
  router = MonetRouter(tiny.config(), rngs=nnx.Rngs(0))
  stats = nnx.to_flat_state(nnx.state(router, nnx.BatchStat))
  assert {path for path, _ in stats} == {("norm1", "mean"), ("norm1", "var"), ("norm2", "mean"),
                                         ("norm2", "var")}
  assert set(nnx.state(router, nnx.Param).keys()) == {"w1", "w2"}
