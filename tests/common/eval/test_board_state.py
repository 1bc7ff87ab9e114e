"""BSP metrics: board truth against python-chess, coverage/reconstruction extremes, collect."""
import chess
import numpy as np
import pytest

from common.data import tokenizers
from common.eval import board_state as bs

GAME = ";1.e4 e5 2.Nf3 Nc6 3.Bc4 Nf6 4.O-O Bc5 5.d3 d6 6.Bg5 h6 7.Bxf6 Qxf6 8.Nc3"
SANS = "e4 e5 Nf3 Nc6 Bc4 Nf6 O-O Bc5 d3 d6 Bg5 h6 Bxf6 Qxf6 Nc3".split()


def _truth_from_python_chess(board):
  """The BSP vector written out square by square, independently of board_properties."""
  letters = "kqrbnpPNBRQK"
  out = np.zeros((64, 12), bool)
  for square in chess.SQUARES:
    piece = board.piece_at(square)
    if piece is not None:
      out[square, letters.index(piece.symbol())] = True
  return out.reshape(-1)


def test_game_features_match_python_chess():
  positions, truth = bs.game_features(GAME)
  assert truth.shape == (8, bs.NUM_BSPS) and truth.dtype == bool
  np.testing.assert_array_equal(positions, [i for i, c in enumerate(GAME) if c == "."])
  board = chess.Board()
  for k in range(8):  # at move k+1's '.', White is to move after 2k plies
    np.testing.assert_array_equal(truth[k], _truth_from_python_chess(board))
    assert truth[k].sum() == len(board.piece_map())
    for san in SANS[2 * k:2 * k + 2]:
      board.push_san(san)
  # After 4.O-O: white king on g1 (square 6, class 'K' = 11), rook on f1 (5, 'R' = 9).
  assert truth[4, 6 * 12 + 11] and truth[4, 5 * 12 + 9] and not truth[4, 4 * 12 + 11]
  assert bs.PIECE_CLASSES == tuple("kqrbnpPNBRQK")


def test_game_features_tolerate_a_cut_last_move_only():
  cut = GAME[:GAME.index("Qxf6") + 2]   # '... 7.Bxf6 Qx'
  positions, truth = bs.game_features(cut)
  np.testing.assert_array_equal(truth, bs.game_features(GAME)[1][:len(positions)])
  with pytest.raises(ValueError, match="move 3 .'Qh6'"):
    bs.game_features(";1.e4 e5 2.Qh6 Nc6")
  with pytest.raises(ValueError, match="starts with ';'"):
    bs.game_features("1.e4 e5")


def _random_boards(rng, n):
  """bool [n, 768]: every square empty (p=1/2) or one uniformly random piece class."""
  cls = rng.integers(0, 12, (n, 64))
  occupied = rng.random((n, 64)) < 0.5
  out = np.zeros((n, 64, 12), bool)
  np.put_along_axis(out, cls[..., None], occupied[..., None], axis=-1)
  return out.reshape(n, -1)


@pytest.fixture(scope="module")
def boards():
  rng = np.random.default_rng(0)
  return _random_boards(rng, 600), _random_boards(rng, 300)


def test_coverage_one_for_indicators_and_chance_for_noise(boards):
  fit, _ = boards
  rng = np.random.default_rng(1)
  noise = rng.random((len(fit), 200)).astype(np.float32)
  perfect = np.concatenate([noise, fit.astype(np.float32)], 1)[:, rng.permutation(968)]
  assert bs.coverage(perfect, fit, feature_chunk=128) == pytest.approx(1.0)
  # Noise scores at least "always fire" (F1 = 2r / (1 + r) for a BSP of base rate r), plus
  # what picking the best of 200 random features per BSP adds by chance: the same for any draw.
  rate = fit.mean(0)
  always_on = float(np.mean(2 * rate / (1 + rate)))
  score = bs.coverage(noise, fit)
  other_draw = bs.coverage(rng.random(noise.shape).astype(np.float32), fit)
  assert always_on <= score < 0.25 and abs(score - other_draw) < 0.02
  # A BSP that never occurs scores 0 but still counts, as in SAE_BoardGameEval.
  half = fit.copy()
  half[:, :384] = False
  assert bs.coverage(half.astype(np.float32), half) == pytest.approx(0.5)


def test_reconstruction_perfect_features_and_noise(boards):
  fit, test = boards
  rng = np.random.default_rng(2)
  noise_fit = rng.random((len(fit), 100)).astype(np.float32)
  noise_test = rng.random((len(test), 100)).astype(np.float32)
  acts_fit = np.concatenate([fit.astype(np.float32), noise_fit], 1)
  acts_test = np.concatenate([test.astype(np.float32), noise_test], 1)
  assert bs.reconstruction(acts_fit, fit, acts_test, test, feature_chunk=256) == pytest.approx(1)
  assert bs.reconstruction(noise_fit, fit, noise_test, test) == 0.0
  # Fewer than min_count hits on the fit set: no labels, nothing predicted.
  assert bs.reconstruction(acts_fit[:20], fit[:20], acts_test, test) == 0.0


def test_reconstruction_counts_a_square_with_a_wrong_extra_piece_as_false_positive():
  truth = np.zeros((2, bs.NUM_BSPS), bool)
  truth[:, 0] = True                  # black king on a1 in both positions
  predicted = truth.copy()
  predicted[0, 1] = True              # position 0 also predicts a black queen on a1
  # TP 1 (position 1), FP 1, FN 0 -> precision 1/2, recall 1 -> F1 2/3.
  assert bs._per_square_f1(predicted, truth) == pytest.approx(2 / 3)  # pylint: disable=protected-access


def test_metrics_reject_bad_inputs(boards):
  fit, _ = boards
  with pytest.raises(ValueError, match="same N"):
    bs.coverage(np.zeros((3, 4)), fit)
  with pytest.raises(ValueError, match="must be bool"):
    bs.coverage(np.zeros((600, 4)), fit.astype(np.int32))
  with pytest.raises(ValueError, match=r"\[0, 1\)"):
    bs.coverage(np.zeros((600, 4)), fit, thresholds=(0.5, 1.0))


def test_collect_gathers_dot_positions():
  games = [GAME, ";1.d4 d5 2.c4 e6 3.Nc3 Nf6 4.Bg5", ";1.e4 c5 2.Nf3"]
  seq_len, calls = 24, []

  def hidden_fn(tokens):
    calls.append(tokens.shape)
    one_hot = np.eye(32, dtype=np.float32)[tokens]
    where = np.broadcast_to(np.arange(tokens.shape[1], dtype=np.float32)[None, :, None],
                            tokens.shape + (1,))
    return np.concatenate([one_hot, where], -1)

  acts, targets = bs.collect(games, hidden_fn, seq_len=seq_len, batch_size=2)
  assert calls == [(2, seq_len), (2, seq_len)]
  expected = [bs.game_features(g[:seq_len]) for g in games]
  np.testing.assert_array_equal(targets, np.concatenate([t for _, t in expected]))
  np.testing.assert_array_equal(acts[:, 32], np.concatenate([p for p, _ in expected]))
  dot = tokenizers.CHESS_VOCAB.index(".")
  np.testing.assert_array_equal(acts[:, :32].argmax(1), dot)
  with pytest.raises(ValueError, match="hidden_fn returned shape"):
    bs.collect(games, lambda t: np.zeros(t.shape), seq_len=seq_len, batch_size=2)
