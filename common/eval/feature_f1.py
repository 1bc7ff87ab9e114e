"""F1 of hidden units as detectors of known binary properties: coverage and per-unit F1.

The scoring of Karvonen et al. 2024 (adamkarvonen/SAE_BoardGameEval), which MoE-X applies to MLP
hidden units and which any task with known ground-truth properties can use (chess board states:
common/eval/board_state.py; synthetic features in superposition: common/tasks/superposition.py).

* A unit (a "feature" of the hidden code) fires on an example when its activation exceeds
  t * (its max activation over the examples), for each t in `THRESHOLDS` (the repo's
  `torch.arange(0, 1.1, 0.1)` without 1.0, at which a unit never exceeds its own maximum).
  Units whose maximum is <= 0 never fire.
* `coverage`: per threshold, the mean over properties of the best F1 over units, then the max
  over thresholds (`best_f1_average`). By default every property counts, those that never occur
  as 0 (the repo's normalisation); `occurring_only=True` averages over the properties that occur
  in the examples.
* `unit_f1` (monosemanticity of the units, the per-unit view of the same F1 table): per
  threshold, the mean over the units that fire of each unit's best F1 over properties, then the
  max over thresholds. 1.0 when every firing unit detects exactly one property.

The heavy part (a [N, F] x [N, P] product per threshold) runs in JAX over chunks of units, on
the default device. Counts are exact: 0/1 inputs, float32 accumulation, N < 2**24.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

THRESHOLDS = tuple(i / 10 for i in range(10))
FEATURE_CHUNK = 512


def check_pair(acts, targets, name: str) -> tuple[np.ndarray, np.ndarray]:
  acts = np.asarray(acts, np.float32)
  targets = np.asarray(targets)
  if acts.ndim != 2 or targets.ndim != 2 or len(acts) != len(targets) or not len(acts):
    raise ValueError(f"{name}: expected acts [N, F] and targets [N, P] with the same N > 0; got "
                     f"{acts.shape} and {targets.shape} .")
  if targets.dtype != bool:
    raise ValueError(f"{name}: targets must be bool (BSP truth); got {targets.dtype}.")
  if not np.isfinite(acts).all():
    raise ValueError(f"{name}: activations contain NaN or inf.")
  return acts, targets


def thresholds_of(thresholds: Sequence[float]) -> np.ndarray:
  t = np.asarray(thresholds, np.float32)
  if t.ndim != 1 or not len(t) or (t < 0).any() or (t >= 1).any():
    raise ValueError(f"thresholds={thresholds!r}: expected fractions of the max activation in "
                     "[0, 1) (1.0 never fires on the data that defines the max).")
  return t


def firing_levels(acts: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
  """float32 [T, F]: a feature fires where act > level; inf for features that never fire."""
  peak = acts.max(0)
  levels = thresholds[:, None] * peak[None, :]
  return np.where(peak[None, :] > 0, levels, np.inf).astype(np.float32)


def chunks(num_features: int, chunk: int):
  for start in range(0, num_features, chunk):
    yield slice(start, min(start + chunk, num_features))


def pad_chunk(acts: np.ndarray, levels: np.ndarray, sl: slice, chunk: int):
  """The features of `sl`, padded to `chunk` with never-firing columns (one compiled shape)."""
  a, lv = acts[:, sl], levels[:, sl]
  pad = chunk - a.shape[1]
  if pad:
    a = np.pad(a, ((0, 0), (0, pad)))
    lv = np.pad(lv, ((0, 0), (0, pad)), constant_values=np.inf)
  return a, lv


@jax.jit
def _f1_chunk(acts, levels, targets):
  """([T, P] best F1 over this chunk's units per property, [T, C] best F1 over properties per
  unit, [T, C] whether the unit fires at all), per threshold."""
  positives = targets.sum(0)

  def at(level):
    on = (acts > level).astype(jnp.float32)
    tp = on.T @ targets                                  # [C, P]
    denom = on.sum(0)[:, None] + positives[None, :]      # fired + positives = 2TP + FP + FN
    f1 = jnp.where(denom > 0, 2 * tp / jnp.maximum(denom, 1), 0.0)
    return f1.max(0), f1.max(1), on.sum(0) > 0

  return jax.lax.map(at, levels)


def _f1_tables(acts, targets, thresholds, feature_chunk, name):
  """(best F1 per property [T, P], per-unit best F1 [T, F], unit fires [T, F]) per threshold."""
  acts, targets = check_pair(acts, targets, name)
  levels = firing_levels(acts, thresholds_of(thresholds))
  chunk = min(feature_chunk, acts.shape[1])
  tgt = jnp.asarray(targets, jnp.float32)
  best, per_unit, fires = None, [], []
  for sl in chunks(acts.shape[1], chunk):
    prop, unit, fired = _f1_chunk(*map(jnp.asarray, pad_chunk(acts, levels, sl, chunk)), tgt)
    best = prop if best is None else jnp.maximum(best, prop)
    width = sl.stop - sl.start
    per_unit.append(unit[:, :width])
    fires.append(fired[:, :width])
  return best, jnp.concatenate(per_unit, 1), jnp.concatenate(fires, 1), targets


def coverage(acts: np.ndarray, targets: np.ndarray, *,
             thresholds: Sequence[float] = THRESHOLDS,
             feature_chunk: int = FEATURE_CHUNK, occurring_only: bool = False) -> float:
  """Max over thresholds of the mean over properties of the best F1 over units (module doc)."""
  best, _, _, targets = _f1_tables(acts, targets, thresholds, feature_chunk, "coverage")
  if occurring_only:
    occurs = jnp.asarray(targets.any(0))
    if not bool(occurs.any()):
      return 0.0
    return float(jnp.max(jnp.sum(best * occurs, axis=1) / jnp.sum(occurs)))
  return float(jnp.max(jnp.mean(best, axis=1)))


def unit_f1(acts: np.ndarray, targets: np.ndarray, *,
            thresholds: Sequence[float] = THRESHOLDS,
            feature_chunk: int = FEATURE_CHUNK) -> float:
  """Max over thresholds of the mean over firing units of their best F1 (module doc)."""
  _, per_unit, fires, _ = _f1_tables(acts, targets, thresholds, feature_chunk, "unit_f1")
  count = jnp.sum(fires, axis=1)
  mean = jnp.where(count > 0, jnp.sum(per_unit * fires, axis=1) / jnp.maximum(count, 1), 0.0)
  return float(jnp.max(mean))
