"""Strided perplexity: the HF window recipe, and its NLL against a direct per-window computation."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import projects.sea  # noqa: F401
from projects.sea import opt, perplexity
from projects.sea.config import OPTConfig


def test_windows_follow_the_hf_recipe():
  # N=10, max_length 4, stride 2: windows [0,4) [2,6) [4,8) [6,10); labels = new tokens only.
  assert perplexity.windows(10, 4, 2) == [(0, 4, 4), (2, 6, 2), (4, 8, 2), (6, 10, 2)]
  # SEA's protocol: stride = max_length, disjoint windows, the last one short.
  assert perplexity.windows(10, 4, 4) == [(0, 4, 4), (4, 8, 4), (8, 10, 2)]
  with pytest.raises(ValueError, match="stride"):
    perplexity.windows(10, 4, 5)


@pytest.fixture(scope="module")
def tiny_lm():
  cfg = OPTConfig(vocab_size=32, hidden_size=16, num_layers=1, num_heads=2, ffn_dim=32,
                  max_position_embeddings=8)
  return nnx.jit(lambda: opt.OPT(cfg, rngs=nnx.Rngs(3)))()


@nnx.jit
def _log_probs(model, tokens):
  return jax.nn.log_softmax(model(tokens).logits)


# Stream lengths chosen so every window has 8 tokens: one compiled shape per case (CPU budget).
@pytest.mark.parametrize("max_length,stride,n", [(8, 8, 24), (8, 3, 26)])
def test_strided_nll_equals_direct_computation(tiny_lm, max_length, stride, n):
  ids = np.random.default_rng(0).integers(0, 32, n)
  got = perplexity.strided_nll(tiny_lm, ids, max_length=max_length, stride=stride, batch_size=8)
  total = weight = 0.0
  for b, e, trg in perplexity.windows(len(ids), max_length, stride):
    logp = np.asarray(_log_probs(tiny_lm, jnp.asarray(ids[b:e])[None])[0])
    scored = [-logp[j - 1, ids[b + j]] for j in range(e - b - min(trg, e - b - 1), e - b)]
    total += np.mean(scored) * trg
    weight += trg
  assert got["tokens"] == weight == n  # every token's weight counted once
  np.testing.assert_allclose(got["nll"], total / weight, rtol=1e-5)
  assert got["ppl"] == pytest.approx(math.exp(got["nll"]))


def test_wikitext_inputs_missing_raise_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="wiki.test.raw"):
    perplexity.wikitext2_text(str(tmp_path))
  (tmp_path / "wiki.test.raw").write_text(" = A = \n\n text \n")
  assert perplexity.wikitext2_text(str(tmp_path)) == " = A = \n\n\n\n\n\n text \n"
  with pytest.raises((ImportError, FileNotFoundError), match="tokenizers|vocab.json"):
    perplexity.opt_bpe_encode("x", str(tmp_path))
