"""Every remat policy computes the same loss and gradients; sown statistics survive remat."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.layers import intermediates, remat, vit


X = jnp.asarray(np.random.RandomState(0).randn(2, 8, 8, 1), jnp.float32)


@pytest.fixture(scope="module")
def model():
  return vit.VisionTransformer(image_size=8, patch_size=4, channels=1, num_classes=3, width=8,
                               depth=2, num_heads=2, mlp_dim=16, mlp_activation="relu",
                               head_zero_init=False, rngs=nnx.Rngs(0))


@nnx.jit
def _step(model):
  def loss_fn(model):
    return jnp.sum(model(X) ** 2), intermediates.pop_layer_stats(model)
  return nnx.value_and_grad(loss_fn, has_aux=True)(model)


def _loss_and_grads(model, policy):
  model.remat_policy = policy  # static attribute: a new trace per policy, same parameters
  (loss, stats), grads = _step(model)
  return loss, stats, jax.tree.leaves(nnx.to_pure_dict(grads))


def test_policies_agree_with_no_remat(model):
  loss0, stats0, grads0 = _loss_and_grads(model, "none")
  assert list(stats0) == ["layer_0", "layer_1"]
  # Three policies keep the test short; all names are checked by test_every_name_maps.
  for policy in ("full", "dots_with_no_batch_dims_saveable", "save_block_outputs"):
    loss, stats, grads = _loss_and_grads(model, policy)
    np.testing.assert_allclose(loss, loss0, rtol=1e-6)
    np.testing.assert_allclose(stats["layer_1"], stats0["layer_1"])
    for g, g0 in zip(grads, grads0):
      np.testing.assert_allclose(g, g0, rtol=1e-4, atol=1e-6)


def test_every_name_maps():
  for policy in remat.POLICIES:
    remat.checkpoint_policy(policy)
  fn = lambda module, x: x  # noqa: E731
  assert remat.remat(fn, "none") is fn


def test_unknown_policy_lists_the_allowed_ones():
  with pytest.raises(ValueError, match="remat_policy='some'.*dots_saveable"):
    remat.checkpoint_policy("some")
