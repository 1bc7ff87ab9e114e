"""T5 encoder-decoder: padding invariance, decoder causality, shared-embedding logits.

One model, one jitted forward and two input shapes keep compilation (the cost here) small.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.layers import intermediates
from projects.lazy_neuron import t5

SIZES = dict(vocab_size=20, d_model=16, d_ff=32, num_heads=2, head_dim=8, num_encoder_layers=2,
             num_decoder_layers=1)
ENC = jnp.array([[5, 6, 7, 0], [8, 9, 0, 0]])
DEC = jnp.array([[0, 3, 4], [0, 5, 6]])
TARGETS = jnp.array([[3, 4, 1], [5, 1, 0]])


@nnx.jit
def _forward(model, enc, dec, targets):
  logits = model(enc, dec, decoder_target_tokens=targets)
  stats = intermediates.pop_layer_stats(model)
  # The decoder's output before the tied logits layer, to check the logits formula.
  hidden = model.decoder(model.embedding(dec), model.encode(enc), enc > 0, targets > 0)
  nnx.pop(model, nnx.Intermediate)
  return logits, stats, hidden


@pytest.fixture(scope="module")
def model():
  return t5.T5EncoderDecoder(**SIZES, top_k=(0, 4, 0), rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def outputs(model):
  return jax.device_get(_forward(model, ENC, DEC, TARGETS))


def test_encoder_padding_does_not_change_the_output(model, outputs):
  longer = jax.device_get(_forward(model, jnp.pad(ENC, ((0, 0), (0, 3))), DEC, TARGETS))
  # Padded decoder positions (target 0) attend nowhere and are meaningless; compare the rest.
  real = np.asarray(TARGETS) > 0
  np.testing.assert_allclose(outputs[0][real], longer[0][real], rtol=1e-5, atol=1e-5)


def test_decoder_is_causal(model, outputs):
  changed = jax.device_get(_forward(model, ENC, DEC.at[:, 2].set(11), TARGETS))[0]
  np.testing.assert_allclose(outputs[0][:, :2], changed[:, :2], rtol=1e-5, atol=1e-5)
  assert not np.allclose(outputs[0][:, 2:], changed[:, 2:])


def test_tied_logits_are_the_scaled_shared_embedding(model, outputs):
  emb = np.asarray(model.embedding.embedding[...])
  np.testing.assert_allclose(outputs[0], outputs[2] @ emb.T / np.sqrt(16), rtol=1e-4, atol=1e-5)
  assert outputs[0].shape == (2, 3, 20) and outputs[0].dtype == np.float32


def test_statistics_are_named_per_stack_and_respect_top_k(outputs):
  stats = outputs[1]
  assert list(stats) == ["decoder_layer_0", "encoder_layer_0", "encoder_layer_1"]
  assert np.all(stats["encoder_layer_1"] <= 4 / 32)
  assert all(v.shape == (2,) for v in stats.values())


def test_untied_logits_parameter_axes_and_errors():
  model = nnx.eval_shape(lambda: t5.T5EncoderDecoder(**SIZES, tie_embeddings=False,
                                                     rngs=nnx.Rngs(0)))
  assert model.embedding.embedding.get_metadata()["out_sharding"] == ("vocab", "embed")
  assert model.logits_dense.kernel.get_metadata()["out_sharding"] == ("embed", "vocab")
  layer = model.encoder.layers[0]
  assert layer.mlp.wi.bias is None and layer.self_attention.query_bias is None
  with pytest.raises(ValueError, match="one entry per layer"):
    t5.T5EncoderDecoder(**SIZES, top_k=(1, 1), rngs=nnx.Rngs(0))
