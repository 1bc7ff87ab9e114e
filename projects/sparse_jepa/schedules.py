"""I-JEPA schedules and optimiser helpers with the official formulas, as optax schedules.

Official: src/utils/schedulers.py (WarmupCosineSchedule, CosineWDSchedule), src/helper.py
init_opt (L102-150: param groups, step counts) and src/train.py L228-229 (momentum), L333-336
(EMA update). optax calls a schedule with `count` = updates already applied (0 for the first).
The official LR/WD schedulers step *before* each update (train.py L291-292), so update `count`
uses the official value at internal step count + 1; the momentum generator is advanced *after*
the update and yields i = 0 first, so the EMA after update `count` uses i = count.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

Schedule = Callable[[Any], jax.Array]


def official_step_counts(iterations_per_epoch: int, num_epochs: int, warmup_epochs: float,
                         ipe_scale: float = 1.0) -> dict[str, Any]:
  """Step counts the official code derives from epochs (helper.py L138-148, train.py L228).

  Returns warmup_steps = int(warmup * ipe), total_steps = int(ipe_scale * epochs * ipe) (LR, WD)
  and momentum_steps = ipe * epochs * ipe_scale (a float; the EMA divides by it unrounded).
  """
  if iterations_per_epoch < 1 or num_epochs < 1 or warmup_epochs < 0 or ipe_scale <= 0:
    raise ValueError(f"iterations_per_epoch={iterations_per_epoch}, num_epochs={num_epochs}, "
                     f"warmup_epochs={warmup_epochs}, ipe_scale={ipe_scale}; allowed: ipe >= 1, "
                     "epochs >= 1, warmup >= 0, ipe_scale > 0.")
  return {"warmup_steps": int(warmup_epochs * iterations_per_epoch),
          "total_steps": int(ipe_scale * num_epochs * iterations_per_epoch),
          "momentum_steps": iterations_per_epoch * num_epochs * ipe_scale}


def warmup_cosine_lr(start_lr: float, ref_lr: float, final_lr: float, warmup_steps: int,
                     total_steps: int) -> Schedule:
  """Official WarmupCosineSchedule as an optax schedule.

  With s = count + 1: s < warmup: start + s / max(1, warmup) * (ref - start); else
  max(final, final + (ref - final) * (1 + cos(pi * (s - warmup) / max(1, total - warmup))) / 2).
  As upstream, nothing clamps progress at 1: past total_steps the cosine rises again (official
  runs stop earlier because ipe_scale > 1 stretches total_steps).
  """
  if warmup_steps < 0 or total_steps < 1:
    raise ValueError(f"warmup_steps={warmup_steps}, total_steps={total_steps}; allowed: "
                     "warmup_steps >= 0, total_steps >= 1.")
  span = float(max(1, total_steps - warmup_steps))

  def schedule(count):
    s = jnp.asarray(count, jnp.float32) + 1.0
    warm = start_lr + s / float(max(1, warmup_steps)) * (ref_lr - start_lr)
    progress = (s - warmup_steps) / span
    cos = final_lr + (ref_lr - final_lr) * 0.5 * (1.0 + jnp.cos(math.pi * progress))
    return jnp.where(s < warmup_steps, warm, jnp.maximum(final_lr, cos))

  return schedule


def cosine_weight_decay(ref_wd: float, final_wd: float, total_steps: int) -> Schedule:
  """Official CosineWDSchedule: final + (ref - final) * (1 + cos(pi * s / total)) / 2, s = count+1,
  clamped toward final_wd (max when decaying, min when growing as in 0.04 -> 0.4)."""
  if total_steps < 1:
    raise ValueError(f"total_steps={total_steps}; allowed: >= 1.")

  def schedule(count):
    s = jnp.asarray(count, jnp.float32) + 1.0
    wd = final_wd + (ref_wd - final_wd) * 0.5 * (1.0 + jnp.cos(math.pi * s / total_steps))
    return jnp.maximum(final_wd, wd) if final_wd <= ref_wd else jnp.minimum(final_wd, wd)

  return schedule


def ema_momentum(ema: Sequence[float], momentum_steps: float) -> Schedule:
  """Official momentum: ema[0] + i * (ema[1] - ema[0]) / momentum_steps (train.py L228-229).

  The official generator has int(momentum_steps) + 1 values; i is clipped there instead of raising
  StopIteration.
  """
  if len(ema) != 2 or momentum_steps <= 0:
    raise ValueError(f"ema={ema!r}, momentum_steps={momentum_steps}; allowed: a pair "
                     "(start, end) and momentum_steps > 0.")
  m0, m1 = float(ema[0]), float(ema[1])
  last = float(int(momentum_steps))

  def schedule(count):
    i = jnp.minimum(jnp.asarray(count, jnp.float32), last)
    return m0 + i * (m1 - m0) / momentum_steps

  return schedule


def ema_update(target: Any, online: Any, momentum) -> Any:
  """theta_bar <- m * theta_bar + (1 - m) * theta (train.py L333-336), over matching pytrees."""
  return jax.tree.map(lambda t, o: (momentum * t + (1.0 - momentum) * o).astype(t.dtype),
                      target, online)


def weight_decay_mask(params: Any) -> Any:
  """True where the official code applies weight decay (helper.py L115-131).

  Excluded: any parameter whose name contains 'bias', and every 1-D parameter (LayerNorm scales).
  Works on an nnx.State (leaves are Variables) or a pure dict of arrays; the result has the same
  structure with bools at the leaves, usable as optax's `mask`.
  """

  def decide(path, leaf):
    value = leaf[...] if isinstance(leaf, nnx.Variable) else leaf
    return not ("bias" in jax.tree_util.keystr(path) or len(value.shape) == 1)

  return jax.tree_util.tree_map_with_path(
      decide, params, is_leaf=lambda x: isinstance(x, nnx.Variable))
