"""Incremental decoding with a cache against the full forward."""
import jax
import numpy as np
import pytest
from flax import nnx

from common.train import config_io
from projects.routing_transformer import decoding, task as task_lib

CONFIGS = "projects/routing_transformer/configs"


def _model_and_tokens(variant, skip_first=0, **model_fields):
  config = config_io.load_config(f"{CONFIGS}/stdlib_demo.py:tiny,{variant}")
  config.model.skip_first = skip_first
  config.model.update(model_fields)
  model = task_lib.get_task(config).build_model(nnx.Rngs(0))
  tokens = np.random.RandomState(0).randint(2, 258, (2, config.data.seq_len)).astype(np.int32)
  return model, tokens


@pytest.fixture(scope="module")
def routing_decoded():
  # Routing only in the last layer (as the released PG-19 model): the cached q/v of that layer
  # then come from causal local layers, so decoding must match the prefix forward exactly.
  model, tokens = _model_and_tokens("routing", skip_first=1)
  return model, tokens, np.asarray(nnx.jit(decoding.decode_logits)(model, tokens))


def test_local_only_decoding_equals_full_forward():
  model, tokens = _model_and_tokens("local_only")
  full = np.asarray(nnx.jit(lambda m, x: m(x)[0])(model, tokens))
  dec = np.asarray(nnx.jit(decoding.decode_logits)(model, tokens))
  np.testing.assert_allclose(dec, full, atol=2e-4, rtol=2e-4)


@pytest.mark.parametrize("prefix", [32, 64])  # multiples of the tiny block (16), >= window
def test_routing_decoding_equals_full_forward_on_the_prefix(routing_decoded, prefix):
  """Step t decodes as the full forward over tokens [0, t]: membership among the past only."""
  model, tokens, dec = routing_decoded
  full = np.asarray(nnx.jit(lambda m, x: m(x)[0])(model, tokens[:, :prefix]))
  np.testing.assert_allclose(dec[:, prefix - 1], full[:, -1], atol=2e-4, rtol=2e-4)
  assert np.all(np.isfinite(dec))


def test_routing_decoding_with_lucidrains_numerics_equals_full_forward():
  """The self mask and 1/sqrt(d) reach decoding through the same routed attention."""
  model, tokens = _model_and_tokens("routing", skip_first=1, routing_mask_self=True,
                                    routing_scale_logits=True)
  assert model.layers[1].attention.routing_mask_self
  dec = np.asarray(nnx.jit(decoding.decode_logits)(model, tokens[:, :64]))
  full = np.asarray(nnx.jit(lambda m, x: m(x)[0])(model, tokens[:, :64]))
  np.testing.assert_allclose(dec[:, -1], full[:, -1], atol=2e-4, rtol=2e-4)


def test_greedy_sample_keeps_the_prompt_and_follows_the_full_forward():
  """temperature 0: every generated token is the argmax of the full forward at the step before
  (local heads only, so membership plays no part)."""
  model, tokens = _model_and_tokens("local_only")
  prompt = tokens[:, :10]
  sample = nnx.jit(decoding.sample, static_argnames=("length", "temperature"))
  out = np.asarray(sample(model, prompt, length=32, key=jax.random.key(0), temperature=0.0))
  np.testing.assert_array_equal(out[:, :10], prompt)
  full = np.asarray(nnx.jit(lambda m, x: m(x)[0])(model, out))
  np.testing.assert_array_equal(out[:, 10:], full[:, 9:-1].argmax(-1))
  with pytest.raises(ValueError, match="prompt"):
    decoding.sample(model, tokens, length=8, key=jax.random.key(0))
