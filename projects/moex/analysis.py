"""Reading a trained model's routing and hidden code (the notebook's and README's figures).

- `capture`: one layer's hidden code, router scores and every expert's true L0 on a token batch.
- `score_l0_correlation`: Pearson r between router scores and the experts' true L0 over all
  (token, expert) pairs: paper Fig. 9 claims r < -0.95 for the sparsity router (a high score
  means a sparse expert) and no such relation for a learned router.
- `expert_top_contexts`: the contexts whose tokens put the most hidden-code mass on an expert.
- `unit_bsp_correlation`: correlation of hidden units with board-state properties, for the heat
  map of one unit over the 8 x 8 board.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from flax import nnx

from common.eval import board_state
from projects.moex import board_eval


def capture(model: nnx.Module, tokens: np.ndarray, layer: int) -> dict[str, np.ndarray]:
  """{'hidden' [B, T, F]} plus, for MoE layers, 'scores' and 'expert_l0' [B, T, M]."""
  return board_eval.capture_fn(model, layer, router=True)(tokens)


def score_l0_correlation(scores: np.ndarray, expert_l0: np.ndarray,
                         valid: np.ndarray | None = None) -> float:
  """Pearson r over all valid (token, expert) pairs; valid [B, T] bool (None: all tokens)."""
  s, l0 = scores.reshape(-1, scores.shape[-1]), expert_l0.reshape(-1, expert_l0.shape[-1])
  if valid is not None:
    keep = valid.reshape(-1)
    s, l0 = s[keep], l0[keep]
  return float(np.corrcoef(s.ravel(), l0.ravel())[0, 1])


def expert_load(scores: np.ndarray, top_k: int) -> np.ndarray:
  """Fraction of token->expert assignments per expert (the router's top-k of `scores`)."""
  idx = np.argsort(-scores.reshape(-1, scores.shape[-1]), axis=-1)[:, :top_k]
  return np.bincount(idx.ravel(), minlength=scores.shape[-1]) / idx.size


def expert_top_contexts(hidden: np.ndarray, tokens: np.ndarray, expert: int, expert_hidden: int,
                        decode: Callable, *, n: int = 5, before: int = 24,
                        after: int = 4) -> list[dict]:
  """The n (row, position) whose hidden-code mass on `expert` is largest, as text snippets."""
  mass = hidden[..., expert * expert_hidden:(expert + 1) * expert_hidden].sum(-1)   # [B, T]
  out = []
  for flat in np.argsort(-mass.ravel())[:n]:
    b, t = np.unravel_index(flat, mass.shape)
    out.append({"score": float(mass[b, t]), "before": decode(tokens[b, max(0, t - before):t]),
                "token": decode(tokens[b, t:t + 1]), "after": decode(tokens[b, t + 1:t + 1 + after])})
  return out


def unit_bsp_correlation(acts: np.ndarray, targets: np.ndarray) -> np.ndarray:
  """[F, P] Pearson correlation of each hidden unit with each board-state property."""
  a = acts - acts.mean(0)
  t = targets.astype(np.float32)
  t = t - t.mean(0)
  denom = np.outer(np.sqrt((a * a).sum(0)), np.sqrt((t * t).sum(0)))
  return np.where(denom > 0, a.T @ t / np.maximum(denom, 1e-12), 0.0)


def board_map(corr_row: np.ndarray, piece: int) -> np.ndarray:
  """[8, 8] (rank 8 at the top, file a at the left) of one unit's correlation with `piece`."""
  grid = corr_row.reshape(64, board_state.NUM_CLASSES)[:, piece].reshape(8, 8)  # [rank, file]
  return grid[::-1]
