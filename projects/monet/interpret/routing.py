"""Per-expert routing statistics and an expert's top-activating contexts.

The model must be in eval mode (running BN statistics): routing then depends on each token alone,
not on what else is in the batch. Expert (r, i, j) is pair (i, j) of router r (the r-th router
layer, `MonetConfig.router_layers[r]`); its score on a token is sum_h g1_hi * g2_hj.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from projects.monet.model import MonetForCausalLM


def _batches(windows: np.ndarray, batch_size: int):
  if windows.ndim != 2 or windows.shape[1] < 2:
    raise ValueError(f"windows.shape={windows.shape}: expected (N, seq_len + 1) token windows.")
  for start in range(0, len(windows), batch_size):
    yield windows[start:start + batch_size, :-1]


@nnx.jit
def _mass_sums(model, ids):
  out = model(ids, output_router_probs=True)
  return jnp.stack([jnp.einsum("bthi,bthj->ij", g1, g2) for g1, g2 in
                    (p for p in out.router_probs if p is not None)])


def routing_mass(model: MonetForCausalLM, windows: np.ndarray, *, batch_size: int = 32
                 ) -> np.ndarray:
  """(R, E, E) mean over the windows' input tokens of each expert's score, per router."""
  total, count = None, 0
  for ids in _batches(windows, batch_size):
    s = np.asarray(_mass_sums(model, jnp.asarray(ids)), np.float64)
    total = s if total is None else total + s
    count += ids.size
  if count == 0:
    raise ValueError("windows: no tokens to compute routing statistics on.")
  return total / count


@nnx.jit(static_argnums=(2,))
def _scores(model, ids, router, i, j):
  out = model(ids, output_router_probs=True)
  g1, g2 = [p for p in out.router_probs if p is not None][router]
  return jnp.einsum("bth,bth->bt", g1[..., i], g2[..., j])


def expert_scores(model: MonetForCausalLM, windows: np.ndarray, expert: tuple[int, int, int], *,
                  batch_size: int = 32) -> np.ndarray:
  """(N, seq_len) score of expert (router, i, j) on every input token of the windows."""
  router, i, j = (int(x) for x in expert)
  cfg = model.config
  n_routers, e = len(cfg.router_layers), cfg.moe_experts
  if not (0 <= router < n_routers and 0 <= i < e and 0 <= j < e):
    raise ValueError(f"expert={expert!r}: expected (router in [0, {n_routers}), i and j in "
                     f"[0, {e})).")
  i, j = jnp.asarray(i, jnp.int32), jnp.asarray(j, jnp.int32)  # traced: no recompile per expert
  return np.concatenate([np.asarray(_scores(model, jnp.asarray(ids), router, i, j))
                         for ids in _batches(windows, batch_size)])


def top_contexts(model: MonetForCausalLM, windows: np.ndarray, expert: tuple[int, int, int],
                 decode, *, n: int = 5, before: int = 32, after: int = 8,
                 batch_size: int = 32) -> list[dict]:
  """The `n` input tokens with the highest score for `expert`, with the text around them.

  `decode` maps token ids to text (e.g. a common.data tokenizer's `decode`). Each entry:
  {'score', 'window', 'position', 'before', 'token', 'after'}; the token is the one routed.
  """
  scores = expert_scores(model, windows, expert, batch_size=batch_size)
  order = np.argsort(-scores, axis=None)[:n]
  out = []
  for flat in order:
    w, t = np.unravel_index(flat, scores.shape)
    row = windows[w]
    out.append(dict(score=float(scores[w, t]), window=int(w), position=int(t),
                    before=decode(row[max(0, t - before):t]), token=decode(row[t:t + 1]),
                    after=decode(row[t + 1:t + 1 + after])))
  return out


def specific_experts(masses: Sequence[np.ndarray], target: int, *, n: int = 3
                     ) -> list[tuple[int, int, int]]:
  """The n experts (router, i, j) whose mass on `target` most exceeds the best other domain's.

  A difference rather than a ratio: a ratio ranks rarely used experts first (tiny denominators).
  """
  stack = np.stack(masses)  # (D, R, E, E)
  margin = stack[target] - np.max(np.delete(stack, target, axis=0), axis=0)
  flat = np.argsort(-margin, axis=None)[:n]
  return [tuple(int(x) for x in np.unravel_index(f, margin.shape)) for f in flat]
