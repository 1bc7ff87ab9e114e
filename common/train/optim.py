"""Optimisers and learning-rate schedules from `config.optimizer`."""
from __future__ import annotations

import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

SCHEDULES = ("cosine", "rsqrt", "linear", "constant")
OPTIMIZERS = ("adamw", "adafactor", "sgd")
DECAY_MASKS = ("all", "no_bias_norm", "none")
WD_SCHEDULES = ("constant", "cosine")


def schedule(opt: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  """Linear warm-up from 0, then the named decay; returns lr(step)."""
  lr, warmup = float(opt.learning_rate), int(opt.warmup_steps)
  end = lr * float(opt.end_lr_fraction)
  decay_steps = max(num_steps - warmup, 1)
  if opt.schedule == "cosine":
    decay = optax.cosine_decay_schedule(lr, decay_steps, alpha=float(opt.end_lr_fraction))
  elif opt.schedule == "linear":
    decay = optax.linear_schedule(lr, end, decay_steps)
  elif opt.schedule == "constant":
    decay = optax.constant_schedule(lr)
  elif opt.schedule == "rsqrt":
    # T5/Adafactor style: lr * sqrt(warmup / max(step, warmup)), after a linear ramp from 0.
    base = float(max(warmup, 1))

    def rsqrt(step):
      step = jnp.asarray(step, jnp.float32)
      ramp = jnp.minimum(1.0, step / base) if warmup else 1.0
      return lr * ramp * jax.lax.rsqrt(jnp.maximum(step, base) / base)
    return rsqrt
  else:
    raise ValueError(f"config.optimizer.schedule={opt.schedule!r}; allowed: {SCHEDULES}.")
  if warmup == 0:
    return decay
  start = float(opt.get("warmup_init_lr", 0.0))
  return optax.join_schedules([optax.linear_schedule(start, lr, warmup), decay], [warmup])


def weight_decay_schedule(opt: ml_collections.ConfigDict, num_steps: int):
  """The weight-decay coefficient: a constant, or a cosine from `weight_decay` to
  `final_weight_decay` over the run (I-JEPA raises it 0.04 -> 0.4 this way)."""
  wd, kind = float(opt.weight_decay), opt.get("weight_decay_schedule", "constant")
  if kind == "constant":
    return wd
  if kind == "cosine":
    final = float(opt.final_weight_decay)
    n = float(max(num_steps, 1))
    return lambda step: final + (wd - final) * 0.5 * (
        1.0 + jnp.cos(jnp.pi * jnp.minimum(step, n) / n))
  raise ValueError(f"config.optimizer.weight_decay_schedule={kind!r}; allowed: {WD_SCHEDULES}.")


def decay_mask(kind: str):
  """Which parameters get weight decay. 'no_bias_norm' decays only matrices and kernels (ndim>=2),
  the usual exclusion of biases, norm scales and other vectors (ViT, I-JEPA, T5X all do this)."""
  if kind == "all":
    return None
  if kind == "none":
    return lambda params: jax.tree.map(lambda _: False, params)
  if kind == "no_bias_norm":
    return lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
  raise ValueError(f"config.optimizer.weight_decay_mask={kind!r}; allowed: {DECAY_MASKS}.")


def _path_str(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def parse_lr_multipliers(value: Any) -> tuple[tuple[re.Pattern, float], ...]:
  """config.optimizer.lr_multipliers: ((regex, multiplier), ...) -> compiled, checked pairs."""
  rules = []
  for item in value or ():
    if (not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], str)
        or isinstance(item[1], bool) or not isinstance(item[1], (int, float)) or item[1] < 0):
      raise ValueError(
          f"config.optimizer.lr_multipliers entry {item!r} is not allowed: each entry is "
          "(regex on the parameter path, multiplier >= 0), e.g. (('(^|/)sea/', 10.0), ('.*', 0.2)).")
    try:
      rules.append((re.compile(item[0]), float(item[1])))
    except re.error as e:
      raise ValueError(f"config.optimizer.lr_multipliers regex {item[0]!r} is invalid: {e}.") from e
  return tuple(rules)


def lr_multiplier_tree(params, rules) -> Any:
  """Per-parameter multipliers: the first rule whose regex `search`es the path ('a/b/0/kernel')."""
  def pick(path, _):
    name = _path_str(path)
    return next((m for pattern, m in rules if pattern.search(name)), 1.0)
  return jax.tree_util.tree_map_with_path(pick, params)


class _Empty(NamedTuple):
  pass


def scale_by_lr_multipliers(rules) -> optax.GradientTransformation:
  """Multiplies each parameter's final update by its multiplier: a per-group learning rate.

  Applied after the optimiser, so the whole step -lr * (direction + decoupled decay) is scaled,
  which is what a torch param group's `lr` does for AdamW/SGD. Adam is invariant to gradient
  scale, so scaling gradients instead would change nothing; clipping still sees the raw gradients.
  """
  def init(params):
    del params
    return _Empty()

  def update(updates, state, params=None):
    del params
    multipliers = lr_multiplier_tree(updates, rules)
    return jax.tree.map(lambda u, m: u if m == 1.0 else u * jnp.asarray(m, u.dtype),
                        updates, multipliers), state
  return optax.GradientTransformation(init, update)


def make_optimizer(opt: ml_collections.ConfigDict, num_steps: int):
  """Returns (optax transformation, schedule)."""
  lr = schedule(opt, num_steps)
  wd = float(opt.weight_decay)
  mask = decay_mask(opt.weight_decay_mask)
  if opt.name == "adamw":
    # optax scales the decay by the learning rate, as torch's AdamW: p -= lr * wd(t) * p.
    tx = optax.adamw(lr, b1=opt.b1, b2=opt.b2, eps=opt.eps,
                     weight_decay=weight_decay_schedule(opt, num_steps), mask=mask)
  elif opt.name == "adafactor":
    tx = optax.adafactor(lr, weight_decay_rate=wd or None, weight_decay_mask=mask,
                         multiply_by_parameter_scale=True)
  elif opt.name == "sgd":
    parts = [optax.add_decayed_weights(wd, mask)] if wd else []
    tx = optax.chain(*parts, optax.sgd(lr, momentum=opt.momentum or None))
  else:
    raise ValueError(f"config.optimizer.name={opt.name!r}; allowed: {OPTIMIZERS}.")
  rules = parse_lr_multipliers(opt.get("lr_multipliers", ()))
  if rules:
    tx = optax.chain(tx, scale_by_lr_multipliers(rules))
  if opt.grad_clip_norm and opt.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(float(opt.grad_clip_norm)), tx)
  return tx, lr
