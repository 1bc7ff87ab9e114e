"""Board-state evaluation of a tiny random Monet: the hidden code's shape and its exact linear
relation to the expert layer's output, and evaluate() end to end on a handful of engine games."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.train import config_io
from projects.monet.interpret import board
from tests.projects.monet import tiny

# Real chess-GPT transcripts (legal SAN), so collect() finds '.' positions with true boards.
GAMES = [
    ";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6 4.Ba4 Nf6 5.O-O Be7 6.Re1 b5 7.Bb3 d6 8.c3 O-O",
    ";1.d4 Nf6 2.c4 e6 3.Nc3 Bb4 4.e3 O-O 5.Bd3 d5 6.Nf3 c5 7.O-O Nc6 8.a3 Bxc3",
    ";1.e4 c5 2.Nf3 d6 3.d4 cxd4 4.Nxd4 Nf6 5.Nc3 a6 6.Be2 e5 7.Nb3 Be7 8.O-O O-O",
    ";1.c4 e5 2.Nc3 Nf6 3.g3 d5 4.cxd5 Nxd5 5.Bg2 Nb6 6.Nf3 Nc6 7.O-O Be7 8.d3 O-O",
]


@pytest.fixture(scope="module", params=["horizontal", "vertical"])
def model(request):
  # Vocabulary 32 (chess), 4 layers so that layer 1 reuses layer 0's router (moe_groups 2) and
  # layer 2 has its own: both routing paths of layer_terms are exercised. (The last layer is not
  # tested against hidden_states: HF convention puts the final-normed state there.)
  cfg = tiny.config(vocab_size=32, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                    moe_dim=4, moe_heads=2, moe_experts=8, moe_topk=2,
                    moe_decompose=request.param)
  return tiny.model(cfg, seed=1)


@pytest.mark.parametrize("layer", [1, 2])
def test_code_shape_and_linear_identity(model, layer):
  ids = jnp.asarray(np.random.default_rng(0).integers(0, 32, (2, 9)), jnp.int32)
  with jax.default_matmul_precision("highest"):
    code, out, h, (g1, g2) = board.layer_terms(model, ids, layer)
    full = model(ids, output_hidden_states=True).hidden_states
    rebuilt = code @ board.down_projection(model.layers[layer].moe) + board.output_bias(
        model.layers[layer].moe, g1, g2)
  cfg = model.config
  width = 8 * 4 * (2 if cfg.moe_decompose == "vertical" else 1)
  assert code.shape == (2, 9, width) == (2, 9, board.num_features(model))
  # The replayed decoder reaches the model's own hidden state after `layer`.
  np.testing.assert_allclose(h, full[layer + 1], rtol=1e-5, atol=1e-5)
  # The expert output is exactly linear in the code: the code is what V reads.
  np.testing.assert_allclose(rebuilt, out, rtol=1e-5, atol=1e-6)
  assert float(jnp.max(jnp.abs(out))) > 1e-3  # not a vacuous 0 == 0
  # Routing weights reach the code: with all routing mass removed it vanishes.
  assert np.all(np.asarray(code) >= 0)  # relu2 units times non-negative weights
  zero = board.hidden_code(model.layers[layer].moe, jnp.ones((2, 9, cfg.hidden_size)),
                           jnp.zeros_like(g1), jnp.zeros_like(g2))
  assert float(jnp.max(jnp.abs(zero))) == 0.0


def test_hidden_fn_is_jitted_numpy_and_batch_independent(model):
  fn = board.hidden_fn(model, -1)
  rng = np.random.default_rng(1)
  tokens = rng.integers(0, 32, (4, 16)).astype(np.int32)
  out = fn(tokens)
  assert isinstance(out, np.ndarray) and out.dtype == np.float32
  assert out.shape == (4, 16, board.num_features(model))
  # Eval-mode routing: a game's code does not depend on the other rows of its batch.
  other = tokens.copy()
  other[1:] = rng.integers(0, 32, (3, 16))
  np.testing.assert_allclose(fn(other)[0], out[0], rtol=1e-5, atol=1e-6)


def test_evaluate_returns_fractions(model):
  res = board.evaluate(model, GAMES, layer=-1, seq_len=48, batch_size=2)
  assert 0.0 <= res["coverage"] <= 1.0 and 0.0 <= res["reconstruction"] <= 1.0
  assert res["layer"] == 2.0  # 4 layers // 2
  assert res["features"] == board.num_features(model)
  assert res["positions"] > 0
  # Random features still cover something: some feature overlaps some always-present piece.
  assert res["coverage"] > 0.0


def test_errors_name_the_fix(model):
  with pytest.raises(ValueError, match="layer=4"):
    board.hidden_fn(model, 4)
  with pytest.raises(ValueError, match="needs games= and seq_len="):
    board.evaluate(model)
  with pytest.raises(ValueError, match=">= 2 games"):
    board.evaluate(model, GAMES[:1], seq_len=48)


def test_chess_config_matches_the_code():
  c = config_io.load_config("projects/monet/configs/chess.py:demo,vd")
  assert (c.model.vocab_size, c.data.tokenizer, c.data.seq_len) == (32, "chess", 128)
  assert c.model.moe_decompose == "vertical"
  assert c.model.moe_experts * c.model.moe_dim == 256  # the MoE-X demo's dense MLP width
  smoke = config_io.load_config("projects/monet/configs/chess.py:tiny")
  assert smoke.train.batch_size % 8 == 0 and smoke.model.moe_decompose == "horizontal"
