"""Board-state-property (BSP) metrics of chess-GPT features: coverage and board reconstruction.

The protocol of Karvonen et al. 2024 ("Measuring progress in dictionary learning ... with board
game models", code: adamkarvonen/SAE_BoardGameEval), which MoE-X applies to MLP hidden units:

* Positions: the '.' characters of a transcript ';1.e4 e5 2.Nf3' (`find_dots_indices`), where
  White is about to move. The board there is the one after all moves before that '.'.
* BSPs: P = 8 x 8 x 12 binary properties "piece class c on square s", index `s * 12 + c`, with
  s the python-chess square (a1=0, b1=1, ..., h8=63: the repo's row = rank, column = file) and
  c in `PIECE_CLASSES` (the repo's one-hot order -6..6 for black king..white king with the
  empty class removed). Empty squares are NOT properties: this is the repo's blank-masked piece
  state (`one_hot_mask_idx=6`), whose coverage is normalised by 8 * 8 * 12.
* Firing thresholds and `coverage` (the mean over BSPs of the best F1 over features, BSPs that
  never occur counting as 0 as in the repo, max over thresholds) are the repo's F1 protocol,
  shared with other ground-truth tasks in common/eval/feature_f1.py. `score_games` also reports
  the coverage averaged over the BSPs that occur in the scored positions only.

`reconstruction` (`eval_board_reconstruction.py`): on the fit set, feature f labels BSP p at
threshold t when precision(f -> p) >= 0.95 over the positions where f fires and f fired on p at
least 10 times (`analysis.get_above_below_counts`, `significance_threshold=10`). On the test set,
the predicted board at a position is the union of the labels of the features that fire; the
score is the per-square F1 (`f1_score_per_square`: a square predicted with its true class and
also a wrong class counts as a false positive, not a true positive), maximised over thresholds
as `full_pipeline.py` does. Difference from the repo: it discards such a true positive only when
exactly one wrong class is predicted on the square (`== 1`), which its own comment does not
intend; here any number of wrong classes does. Max activations come from the fit set.

Reconstruction's [N, F] x [N, P] products run in JAX over chunks of features, as feature_f1's.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import chess
import jax
import jax.numpy as jnp
import numpy as np

from common.data import tokenizers
from common.data.builders.chess_games import transcript
from common.eval import feature_f1

# FEN letters of the 12 piece classes, in BSP order (black king .. black pawn, white pawn ..
# white king: SAE_BoardGameEval's one-hot order with its 'empty' class removed).
PIECE_CLASSES = ("k", "q", "r", "b", "n", "p", "P", "N", "B", "R", "Q", "K")
NUM_CLASSES = len(PIECE_CLASSES)
NUM_BSPS = 64 * NUM_CLASSES
THRESHOLDS = feature_f1.THRESHOLDS
HIGH_PRECISION = 0.95
MIN_COUNT = 10
FEATURE_CHUNK = feature_f1.FEATURE_CHUNK
coverage = feature_f1.coverage   # the F1 protocol itself lives in common/eval/feature_f1.py


def _piece_class(piece: chess.Piece) -> int:
  # python-chess piece types: pawn=1 .. king=6.
  return 5 + piece.piece_type if piece.color == chess.WHITE else 6 - piece.piece_type


def board_properties(board: chess.Board) -> np.ndarray:
  """bool [NUM_BSPS]: index square * 12 + piece class."""
  out = np.zeros((64, NUM_CLASSES), bool)
  for square, piece in board.piece_map().items():
    out[square, _piece_class(piece)] = True
  return out.reshape(-1)


def game_features(pgn: str) -> tuple[np.ndarray, np.ndarray]:
  """(positions int32 [n], bsp truth bool [n, NUM_BSPS]) at the '.' characters of `pgn`.

  The last move may be cut off (transcripts are truncated to a context length); any other
  move that is not legal SAN raises, naming it.
  """
  moves = list(transcript.san_tokens(pgn))
  board = chess.Board()
  states = [board_properties(board)]   # states[k]: the board after k moves
  for k, san in enumerate(moves):
    try:
      board.push_san(san)
    except ValueError as e:
      if k == len(moves) - 1:
        break  # a move cut off by truncation
      raise ValueError(f"move {k + 1} ({san!r}) of {pgn[:60]!r}... is not legal SAN here: "
                       f"{e}") from e
    states.append(board_properties(board))
  chars = np.frombuffer(pgn.encode("utf-8"), np.uint8)
  positions = np.flatnonzero(chars == ord(".")).astype(np.int32)
  # As SAE_BoardGameEval's create_state_stack: the state at a character is the board after as
  # many moves as there are spaces before it (clipped where the game was cut off).
  spaces_before = np.cumsum(chars == ord(" "))[positions] if len(positions) else positions
  index = np.minimum(spaces_before, len(states) - 1)
  return positions, np.stack(states)[index].reshape(len(positions), NUM_BSPS)


@functools.partial(jax.jit, static_argnames=("min_count",))
def _predicted_counts_chunk(acts_fit, level_fit, targets_fit, acts_test, level_test, *,
                            precision, min_count):
  """[N_test, P]: how many of this chunk's high-precision features predict each BSP."""
  on_fit = (acts_fit > level_fit).astype(jnp.float32)
  tp = on_fit.T @ targets_fit                            # [C, P]
  fired = on_fit.sum(0)[:, None]
  labels = (tp >= min_count) & (tp >= precision * fired)
  on_test = (acts_test > level_test).astype(jnp.float32)
  return on_test @ labels.astype(jnp.float32)


def _per_square_f1(predicted: np.ndarray, truth: np.ndarray) -> float:
  pred = predicted.reshape(len(predicted), 64, NUM_CLASSES)
  true = truth.reshape(len(truth), 64, NUM_CLASSES)
  tp, fp, fn = pred & true, pred & ~true, ~pred & true
  # A square predicted with its true piece and a wrong one is not a correct square.
  tp_count = tp.sum() - (tp.any(-1) & fp.any(-1)).sum()
  fp_count, fn_count = fp.sum(), fn.sum()
  if tp_count == 0:
    return 0.0
  prec = tp_count / (tp_count + fp_count)
  rec = tp_count / (tp_count + fn_count)
  return float(2 * prec * rec / (prec + rec))


def reconstruction(acts_fit: np.ndarray, targets_fit: np.ndarray, acts_test: np.ndarray,
                   targets_test: np.ndarray, *, thresholds: Sequence[float] = THRESHOLDS,
                   precision: float = HIGH_PRECISION, min_count: int = MIN_COUNT,
                   feature_chunk: int = FEATURE_CHUNK) -> float:
  """Per-square F1 of the test boards predicted by fit-set high-precision features (module doc)."""
  acts_fit, targets_fit = feature_f1.check_pair(acts_fit, targets_fit, "reconstruction (fit)")
  acts_test, targets_test = feature_f1.check_pair(acts_test, targets_test,
                                                  "reconstruction (test)")
  if acts_fit.shape[1] != acts_test.shape[1] or targets_fit.shape[1] != targets_test.shape[1]:
    raise ValueError(f"reconstruction: fit and test disagree on features/BSPs: {acts_fit.shape}, "
                     f"{targets_fit.shape} vs {acts_test.shape}, {targets_test.shape}.")
  if targets_test.shape[1] != NUM_BSPS:
    raise ValueError(f"reconstruction scores squares, so targets need all {NUM_BSPS} BSPs "
                     f"(64 squares x 12 classes); got {targets_test.shape[1]}.")
  if not 0 < precision <= 1 or min_count < 1:
    raise ValueError(f"precision={precision} must be in (0, 1] and min_count={min_count} >= 1.")
  levels = feature_f1.firing_levels(acts_fit, feature_f1.thresholds_of(thresholds))
  chunk = min(feature_chunk, acts_fit.shape[1])
  tgt = jnp.asarray(targets_fit, jnp.float32)
  best = 0.0
  for t in range(len(levels)):
    counts = None
    for sl in feature_f1.chunks(acts_fit.shape[1], chunk):
      fit, level = feature_f1.pad_chunk(acts_fit, levels[t:t + 1], sl, chunk)
      test, _ = feature_f1.pad_chunk(acts_test, levels[t:t + 1], sl, chunk)
      c = _predicted_counts_chunk(jnp.asarray(fit), jnp.asarray(level[0]), tgt,
                                  jnp.asarray(test), jnp.asarray(level[0]),
                                  precision=jnp.float32(precision), min_count=int(min_count))
      counts = c if counts is None else counts + c
    best = max(best, _per_square_f1(np.asarray(counts) > 0, targets_test))
  return best


def collect(games: list[str], hidden_fn: Callable[[np.ndarray], np.ndarray], *, seq_len: int,
            batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(acts float32 [N, F], targets bool [N, NUM_BSPS]) at the '.' positions of `games`.

  Each game is cut to its first `seq_len` characters, tokenized with the chess tokenizer and
  padded with ' ' (id 0; the model is causal, so padding never changes earlier positions);
  `hidden_fn(tokens int32 [batch_size, seq_len]) -> [batch_size, seq_len, F]` is always called
  with full batches (the last one padded with copies of a game), so a jitted model compiles once.
  """
  if seq_len <= 0 or batch_size <= 0:
    raise ValueError(f"seq_len={seq_len} and batch_size={batch_size} must be positive.")
  if isinstance(games, str) or not len(games):
    raise ValueError("games must be a non-empty list of transcripts like ';1.e4 e5 2.Nf3'.")
  tok = tokenizers.ChessTokenizer()
  texts = [g[:seq_len] for g in games]
  features = [game_features(t) for t in texts]
  tokens = np.full((len(texts), seq_len), tok.pad_id, np.int32)
  for i, t in enumerate(texts):
    tokens[i, :len(t)] = tok.encode(t)
  acts, targets = [], []
  for start in range(0, len(texts), batch_size):
    batch = tokens[start:start + batch_size]
    real = len(batch)
    if real < batch_size:
      batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - real, 0)])
    hidden = np.asarray(hidden_fn(batch))
    if hidden.ndim != 3 or hidden.shape[:2] != (batch_size, seq_len):
      raise ValueError(f"hidden_fn returned shape {hidden.shape}; expected [batch_size="
                       f"{batch_size}, seq_len={seq_len}, F].")
    for row in range(real):
      positions, truth = features[start + row]
      acts.append(hidden[row, positions].astype(np.float32))
      targets.append(truth)
  acts, targets = np.concatenate(acts), np.concatenate(targets)
  if not len(acts):
    raise ValueError(f"no '.' positions within the first seq_len={seq_len} characters of any "
                     "game: nothing to evaluate.")
  return acts, targets


def load_games(data_config, split: str, n: int) -> list[str]:
  """The first `n` transcripts of `split` of a chess text dataset (e.g. 'chess_games')."""
  from common.data import sources  # pylint: disable=g-import-not-at-top
  source, _ = sources.open_split(data_config, split)
  if len(source) < n:
    raise ValueError(f"{n} games were asked for but split {split!r} of {data_config.name!r} has "
                     f"{len(source)}; ask for fewer (config.eval.board_games, or --num_games).")
  return [sources.as_text(source[i][data_config.text_key]) for i in range(n)]


def score_games(games: list[str], hidden_fn: Callable[[np.ndarray], np.ndarray], *,
                seq_len: int, batch_size: int) -> dict[str, float]:
  """The protocol the MoE-X and Monet chess evaluations share, so their numbers compare.

  The first half of `games` labels features for reconstruction (the fit set); coverage and
  reconstruction are scored on the second half. Returns {'coverage', 'coverage_occurring' (the
  mean over the BSPs that occur in the scored positions), 'reconstruction', 'positions' (scored
  positions), 'features' (hidden units)}.
  """
  if len(games) < 2:
    raise ValueError(f"board-state evaluation needs >= 2 games (a fit and a test half); got "
                     f"{len(games)}.")
  half = len(games) // 2
  acts_fit, tgt_fit = collect(games[:half], hidden_fn, seq_len=seq_len, batch_size=batch_size)
  acts_test, tgt_test = collect(games[half:], hidden_fn, seq_len=seq_len, batch_size=batch_size)
  return {"coverage": coverage(acts_test, tgt_test),
          "coverage_occurring": coverage(acts_test, tgt_test, occurring_only=True),
          "reconstruction": reconstruction(acts_fit, tgt_fit, acts_test, tgt_test),
          "positions": float(len(acts_test)), "features": float(acts_test.shape[1])}
