"""KV-cache decoding equals the full forward (logits and greedy tokens)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from projects.monet.generate import greedy_generate
from tests.projects.monet import tiny


@pytest.fixture(scope="module")
def model():
  # Two layers with a router each and GQA: small to compile, still exercises every cached path.
  return tiny.model(tiny.config(moe_decompose="horizontal", num_key_value_heads=2,
                                num_hidden_layers=2, moe_groups=1), seed=3)


def test_greedy_tokens_are_argmax_of_full_forward(model):
  prompt = jax.random.randint(jax.random.key(1), (2, 5), 0, 256)
  with jax.default_matmul_precision("highest"):
    seq = np.asarray(greedy_generate(model, prompt, 6))
  assert seq.shape == (2, 11)
  np.testing.assert_array_equal(seq[:, :5], prompt)
  logits, _ = tiny.forward(model, jnp.asarray(seq))
  np.testing.assert_array_equal(np.argmax(logits[:, 4:-1], -1), seq[:, 5:])


def test_cached_chunks_match_full_logits(model):
  ids = jax.random.randint(jax.random.key(2), (2, 9), 0, 256)
  full, _ = tiny.forward(model, ids)
  graphdef, state = nnx.split(model)

  @jax.jit
  def chunked(state, ids):
    m = nnx.merge(graphdef, state)
    out1 = m(ids[:, :5], cache=m.init_cache(2, 12))
    out2 = m(ids[:, 5:], cache=out1.cache)
    return jnp.concatenate([out1.logits, out2.logits], axis=1)

  with jax.default_matmul_precision("highest"):
    np.testing.assert_allclose(chunked(state, ids), full, atol=1e-5)
