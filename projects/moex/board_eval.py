"""Chess board-state coverage and reconstruction of one layer's FFN hidden units (paper Tab. 1).

The features are the FFN hidden code of `config.eval.board_layer` (-1: the middle layer,
num_layers // 2): the M*D routing-weighted expert units for MoE kinds (zero for non-routed
experts), the H units for dense kinds, so every kind is measured the same way. The protocol is
common/eval/board_state.py (Karvonen et al. 2024). Games are the first `board_games` transcripts
of the evaluation split; the first half fits the reconstruction's feature labels, the second
half is scored for both metrics.
"""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np
from flax import nnx

from common.data import sources
from common.eval import board_state
from common.layers import intermediates


def resolve_layer(layer: int, num_layers: int) -> int:
  if layer == -1:
    return num_layers // 2
  if not 0 <= layer < num_layers:
    raise ValueError(f"config.eval.board_layer={layer}: allowed -1 (the middle layer) or "
                     f"0..{num_layers - 1}.")
  return layer


def hidden_fn(model: nnx.Module, layer: int) -> Callable[[np.ndarray], np.ndarray]:
  """tokens int32 [B, T] -> FFN hidden code [B, T, F] of `layer`, jitted (one compile per shape).

  Works on a copy of the module graph, so `model` itself never sows.
  """
  graphdef, state = nnx.split(model)
  probe = nnx.merge(graphdef, state)
  name = probe.capture_hidden(layer)
  graphdef, state = nnx.split(probe)

  @jax.jit
  def run(state, tokens):
    m = nnx.merge(graphdef, state)
    m(tokens)
    stats = intermediates.layer_stats(nnx.pop(m, nnx.Intermediate), name)
    return next(iter(stats.values()))

  return lambda tokens: np.asarray(run(state, tokens))


def load_games(data_config, split: str, n: int) -> list[str]:
  source, _ = sources.open_split(data_config, split)
  if len(source) < n:
    raise ValueError(f"config.eval.board_games={n} but split {split!r} of "
                     f"{data_config.name!r} has {len(source)} games; lower board_games.")
  return [sources.as_text(source[i][data_config.text_key]) for i in range(n)]


def evaluate(model, games: list[str], *, layer: int, seq_len: int,
             batch_size: int) -> dict[str, float]:
  """{'coverage', 'reconstruction', 'positions', 'features'} for `games` (fit half, test half)."""
  return board_state.score_games(games, hidden_fn(model, layer), seq_len=seq_len,
                                 batch_size=batch_size)


class BoardStateEvaluator:
  """The 'board_state' evaluator of the MoE-X task."""

  def __init__(self, config):
    self.config = config
    e = config.eval
    self.layer = resolve_layer(int(e.get("board_layer", -1)), config.model.num_layers)
    self.num_games = int(e.get("board_games", 160))
    self.batch_size = int(e.get("board_batch_size", 16))
    if config.data.get("tokenizer") != "chess":
      raise ValueError(f"the 'board_state' evaluator needs chess transcripts (config.data."
                       f"tokenizer='chess'); got {config.data.get('tokenizer')!r}. Remove it from "
                       "config.eval.evaluators for other data.")
    self._games = None

  def __call__(self, model, ctx) -> dict[str, float]:
    del ctx
    if self._games is None:
      data = self.config.data
      self._games = load_games(data, data.eval_split, self.num_games)
    return evaluate(model, self._games, layer=self.layer, seq_len=self.config.data.seq_len,
                    batch_size=self.batch_size)
