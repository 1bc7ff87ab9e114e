"""The board-state evaluator reads the chosen layer's FFN hidden code for dense and MoE models
alike, and turns it into coverage / reconstruction on real chess transcripts."""
import chess
import numpy as np
import pytest
from flax import nnx

from common.data.builders.chess_games import transcript
from common.train import config_io
from projects.moex import board_eval, task

CHESS = "projects/moex/configs/chess.py"


@pytest.fixture(scope="module")
def games():
  """Random legal games (no data set needed): python-chess plays uniformly random moves."""
  rs = np.random.RandomState(0)
  out = []
  for _ in range(8):
    board, moves = chess.Board(), []
    for _ in range(30):
      legal = list(board.legal_moves)
      if not legal:
        break
      moves.append(legal[rs.randint(len(legal))])
      board.push(moves[-1])
    out.append(transcript.from_moves(moves))
  return out


@pytest.mark.parametrize("kind,width", [("dense_gelu", 32), ("moex", 8 * 16)])
def test_hidden_code_and_metrics(games, kind, width):
  cfg = config_io.load_config(f"{CHESS}:tiny,{kind}")
  model = task.get_task(cfg).build_model(nnx.Rngs(0))
  fn = board_eval.hidden_fn(model, 1)
  tokens = np.zeros((8, 64), np.int32)
  hidden = fn(tokens)
  assert hidden.shape == (8, 64, width)
  if kind == "moex":  # k of M experts routed per token: the rest of the code is exactly zero
    per_expert = np.abs(hidden.reshape(8, 64, 8, 16)).sum(-1)
    assert ((per_expert > 0).sum(-1) <= 2).all() and (hidden >= 0).all()
  assert not hasattr(model.layers[1].ffn, "mlp_hidden")   # the model itself never sowed
  out = board_eval.evaluate(model, games, layer=1, seq_len=64, batch_size=8)
  assert out["features"] == width and out["positions"] > 20
  assert 0 < out["coverage"] <= 1 and 0 <= out["reconstruction"] <= 1


def test_layer_choice_and_errors(games):
  assert board_eval.resolve_layer(-1, 8) == 4
  with pytest.raises(ValueError, match="board_layer=8"):
    board_eval.resolve_layer(8, 8)
  model = task.get_task(config_io.load_config(f"{CHESS}:tiny,switch")).build_model(nnx.Rngs(0))
  with pytest.raises(ValueError, match=">= 2 games"):
    board_eval.evaluate(model, games[:1], layer=0, seq_len=64, batch_size=8)
