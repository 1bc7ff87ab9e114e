"""The ViT and T5 tasks on synthetic batches: losses, masks, metrics, dropout and errors."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from common.eval import registry
from projects.lazy_neuron import losses, task


def _image_batch(n, pad=0, seed=0):
  rs = np.random.RandomState(seed)
  images = rs.rand(n, 28, 28, 1).astype(np.float32)
  labels = rs.randint(0, 10, n).astype(np.int32)
  # Padding rows hold garbage on purpose: with mask 0 they must not count.
  images = np.concatenate([images, np.full((pad, 28, 28, 1), 9.0, np.float32)])
  labels = np.concatenate([labels, np.full(pad, 3, np.int32)])
  mask = np.r_[np.ones(n), np.zeros(pad)].astype(np.float32)
  return {"image": jnp.asarray(images), "label": jnp.asarray(labels), "mask": jnp.asarray(mask)}


def _text_batch(pad=0, seed=0):
  rs = np.random.RandomState(seed)
  enc = rs.randint(2, 300, (3, 32)).astype(np.int32)
  enc[:, 28:] = 0
  targets = rs.randint(2, 300, (3, 8)).astype(np.int32)
  targets[:, 6:] = 0
  # Padding examples hold garbage on purpose: with mask 0 they must not count.
  enc = np.concatenate([enc, np.full((pad, 32), 77, np.int32)])
  targets = np.concatenate([targets, np.full((pad, 8), 5, np.int32)])
  dec = np.concatenate([np.zeros((3 + pad, 1), np.int32), targets[:, :-1]], axis=1)
  mask = np.r_[np.ones(3), np.zeros(pad)].astype(np.float32)
  return {"encoder_input_tokens": jnp.asarray(enc), "decoder_input_tokens": jnp.asarray(dec),
          "decoder_target_tokens": jnp.asarray(targets),
          "decoder_loss_weights": jnp.asarray((targets > 0).astype(np.float32)),
          "mask": jnp.asarray(mask)}


@pytest.fixture(scope="module")
def vit_task(config_module):
  return task.get_task(config_module("vit_mnist").get_config("tiny,topk"))


@pytest.fixture(scope="module")
def t5_task(config_module):
  return task.get_task(config_module("t5_span").get_config("tiny"))


def _eval_loss(t):
  return nnx.jit(lambda model, batch: t.loss(model, batch, train=False, rngs=None))


def test_vit_loss_metrics_and_padding(vit_task):
  model = vit_task.build_model(nnx.Rngs(0))
  loss_fn = _eval_loss(vit_task)
  loss, metrics = jax.device_get(loss_fn(model, _image_batch(4)))
  assert set(metrics) == {"accuracy", "act_nonzero/layer_0", "act_nonzero/layer_1",
                          "act_nonzero/mean"}
  np.testing.assert_allclose(loss, np.log(10), rtol=1e-5)  # zero-initialised head
  k_fraction = vit_task.config.model.top_k / vit_task.config.model.mlp_dim
  assert 0 < metrics["act_nonzero/mean"] <= k_fraction + 1e-7
  padded_loss, padded_metrics = jax.device_get(loss_fn(model, _image_batch(4, pad=2)))
  np.testing.assert_allclose(padded_loss, loss, rtol=1e-6)
  for name in metrics:
    np.testing.assert_allclose(padded_metrics[name], metrics[name], rtol=1e-6)


def test_vit_training_reduces_the_loss(vit_task):
  model = vit_task.build_model(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
  batch = _image_batch(8)
  batch.pop("mask")  # training batches carry no mask

  @nnx.jit
  def step(model, optimizer):
    grad_fn = nnx.value_and_grad(
        lambda m: vit_task.loss(m, batch, train=True, rngs=None), has_aux=True)
    (loss, _), grads = grad_fn(model)
    optimizer.update(model, grads)
    return loss

  first = float(step(model, optimizer))
  for _ in range(15):
    last = float(step(model, optimizer))
  assert np.isfinite(last) and last < first


def test_dropout_needs_rngs(config_module):
  config = config_module("vit_mnist").get_config("tiny")
  config.model.dropout_rate = 0.1
  t = task.get_task(config)
  model = t.build_model(nnx.Rngs(0))
  with pytest.raises(ValueError, match="dropout_rate=0.1 needs `rngs`"):
    t.loss(model, _image_batch(2), train=True, rngs=None)


def test_t5_loss_metrics_and_padding(t5_task):
  model = t5_task.build_model(nnx.Rngs(0))
  loss_fn = _eval_loss(t5_task)
  loss, metrics = jax.device_get(loss_fn(model, _text_batch()))
  assert set(metrics) == {"accuracy", "cross_entropy", "z_loss", "act_nonzero/encoder_layer_0",
                          "act_nonzero/decoder_layer_0", "act_nonzero/mean"}
  np.testing.assert_allclose(loss, metrics["cross_entropy"] + 1e-4 * metrics["z_loss"],
                             rtol=1e-6)
  padded_loss, _ = jax.device_get(loss_fn(model, _text_batch(pad=2)))
  np.testing.assert_allclose(padded_loss, loss, rtol=1e-6)


def test_losses_against_numpy():
  rs = np.random.RandomState(0)
  logits, labels, w = rs.randn(5, 4), rs.randint(0, 4, 5), np.array([1, 1, 0, 1, 0.0])
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  targets = np.eye(4)[labels] * 0.9 + 0.1 / 4
  want = (-(targets * logp).sum(-1) * w).sum() / w.sum()
  got, _ = losses.classification_loss(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(w),
                                      label_smoothing=0.1)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  log_z = np.log(np.exp(logits).sum(-1))
  ce = log_z - logits[np.arange(5), labels]
  got, metrics = losses.token_loss(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(w),
                                   z_loss=0.01)
  np.testing.assert_allclose(got, ((ce + 0.01 * log_z ** 2) * w).sum() / w.sum(), rtol=1e-5)


def test_bad_config_values_name_the_field(config_module):
  vit = config_module("vit_mnist")
  cases = [("top_k", 65, r"config.model.top_k=65.*\[0, config.model.mlp_dim=64\]"),
           ("top_k", (1, 2, 3), r"config.model.top_k=\(1, 2, 3\) needs one entry per layer"),
           ("patch_size", 5, r"config.model.patch_size=5 must divide config.data.image_size=28"),
           ("mlp_activation", "tanh", r"config.model.mlp_activation='tanh'.*allowed"),
           ("remat_policy", "most", r"config.model.remat_policy='most'.*allowed"),
           ("num_heads", 3, r"config.model.num_heads=3 must divide config.model.width=32")]
  for field, value, message in cases:
    config = vit.get_config("tiny")
    config.model[field] = value
    with pytest.raises(ValueError, match=message):
      nnx.eval_shape(lambda: task.get_task(config).build_model(nnx.Rngs(0)))
  config = vit.get_config("tiny")
  config.model.name = "resnet"
  with pytest.raises(ValueError, match=r"config.model.name='resnet'.*allowed: \['t5', 'vit'\]"):
    task.get_task(config)
  config = vit.get_config("tiny")
  config.eval.evaluators = ("classification", "perplexity")
  with pytest.raises(ValueError, match=r"\['perplexity'\] not available"):
    registry.build(config, task.get_task(config))


@pytest.mark.parametrize("name,field,typo", [("vit_mnist", "nosuch", None),
                                             ("vit_mnist", "mlp_dims", "mlp_dim"),
                                             ("t5_span", "d_f", "d_ff")])
def test_misspelled_model_fields_are_errors(config_module, name, field, typo):
  config = config_module(name).get_config("tiny")
  config.model[field] = 3
  hint = rf" \(did you mean config\.model\.{typo}\?\)" if typo else ""
  with pytest.raises(ValueError, match=rf"unknown field config\.model\.{field}{hint}; allowed"):
    task.get_task(config)


def test_dropout_in_training_only(config_module):
  config = config_module("vit_mnist").get_config("tiny")
  config.model.dropout_rate = 0.5
  config.model.head_zero_init = False   # a zero head would hide every change in the features
  t = task.get_task(config)
  model = t.build_model(nnx.Rngs(0))
  batch = _image_batch(2)
  eval_a, eval_b = (t.loss(model, batch, train=False, rngs=None)[0] for _ in range(2))
  train_a, train_b = (t.loss(model, batch, train=True, rngs=nnx.Rngs(dropout=s))[0]
                      for s in (1, 2))
  assert float(eval_a) == float(eval_b) and float(train_a) != float(train_b)
  assert not nnx.state(model, nnx.RngState)   # no RNG stream lives in the model
