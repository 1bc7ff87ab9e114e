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

import numpy as np
from flax import nnx

from common.eval import board_state
from common.layers import moe
from projects.moex import ffn as ffn_lib


def resolve_layer(layer: int, num_layers: int) -> int:
  if layer == -1:
    return num_layers // 2
  if not 0 <= layer < num_layers:
    raise ValueError(f"config.eval.board_layer={layer}: allowed -1 (the middle layer) or "
                     f"0..{num_layers - 1}.")
  return layer


def capture_fn(model: nnx.Module, layer: int, *, router: bool = False
               ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
  """tokens int32 [B, T] -> {'hidden': FFN hidden code [B, T, F] of `layer`} and, with `router`
  on a MoE layer, 'scores' (router scores) and 'expert_l0' (every expert's true L0) [B, T, M].

  Jitted once (one compile per token shape); works on a copy of the module graph, so `model`
  itself never sows.
  """
  def enable(probe):
    names = {"hidden": probe.capture_hidden(layer)}
    if router and isinstance(probe.layers[layer].ffn, moe.SparseMoE):
      names.update(scores="router_scores", expert_l0="expert_l0")
    return names

  run = ffn_lib.capture(model, enable)
  return lambda tokens: run(np.asarray(tokens, np.int32))


def hidden_fn(model: nnx.Module, layer: int) -> Callable[[np.ndarray], np.ndarray]:
  """tokens int32 [B, T] -> FFN hidden code [B, T, F] of `layer` (board_state.collect's hook)."""
  capture = capture_fn(model, layer)
  return lambda tokens: capture(tokens)["hidden"]


load_games = board_state.load_games   # the transcripts both MoE-X and Monet are scored on


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
