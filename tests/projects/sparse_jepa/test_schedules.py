"""Schedules against step-by-step re-statements of the official stateful schedulers."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import common  # noqa: F401
from projects.sparse_jepa import schedules
from projects.sparse_jepa.sparsity_head import SparsityConfig, SparsityHead


def _official_lr(start, ref, final, warmup, t_max, steps):
  """The official WarmupCosineSchedule.step() values, in the order train.py consumes them."""
  out, span = [], t_max - warmup
  for s in range(1, steps + 1):
    if s < warmup:
      out.append(start + s / max(1, warmup) * (ref - start))
    else:
      p = (s - warmup) / max(1, span)
      out.append(max(final, final + (ref - final) * 0.5 * (1 + math.cos(math.pi * p))))
  return out


def _official_wd(ref, final, t_max, steps):
  out = []
  for s in range(1, steps + 1):
    wd = final + (ref - final) * 0.5 * (1 + math.cos(math.pi * s / t_max))
    out.append(max(final, wd) if final <= ref else min(final, wd))
  return out


def test_official_step_counts():
  got = schedules.official_step_counts(iterations_per_epoch=10, num_epochs=3, warmup_epochs=1.5,
                                       ipe_scale=1.25)
  assert got == {"warmup_steps": 15, "total_steps": 37, "momentum_steps": 37.5}


def test_warmup_cosine_lr_matches_official():
  lr = schedules.warmup_cosine_lr(2e-4, 1e-3, 1e-6, warmup_steps=15, total_steps=37)
  counts = jnp.arange(45)  # past total_steps too, where the official cosine rises again
  np.testing.assert_allclose(jax.vmap(lr)(counts), _official_lr(2e-4, 1e-3, 1e-6, 15, 37, 45),
                             rtol=1e-5, atol=1e-9)
  assert float(lr(0)) == pytest.approx(2e-4 + (1e-3 - 2e-4) / 15)


def test_cosine_weight_decay_matches_official_both_directions():
  for ref, final in ((0.04, 0.4), (0.4, 0.04)):
    wd = schedules.cosine_weight_decay(ref, final, total_steps=37)
    np.testing.assert_allclose(jax.vmap(wd)(jnp.arange(45)), _official_wd(ref, final, 37, 45),
                               rtol=1e-5)


def test_ema_momentum_matches_official_generator_and_update():
  ipe, epochs, scale = 10, 3, 1.25
  gen = [0.996 + i * (1.0 - 0.996) / (ipe * epochs * scale)
         for i in range(int(ipe * epochs * scale) + 1)]
  m = schedules.ema_momentum((0.996, 1.0), ipe * epochs * scale)
  np.testing.assert_allclose(jax.vmap(m)(jnp.arange(len(gen))), gen, rtol=1e-7)
  assert float(m(1000)) == pytest.approx(gen[-1])
  target = {"w": jnp.ones(3)}
  online = {"w": jnp.zeros(3)}
  np.testing.assert_allclose(schedules.ema_update(target, online, 0.9)["w"], 0.9)


def test_weight_decay_mask_official_rule_and_optax():
  head = nnx.eval_shape(lambda: SparsityHead(16, SparsityConfig(num_output_groups=2),
                                              rngs=nnx.Rngs(0)))
  params = nnx.to_pure_dict(nnx.state(head, nnx.Param))
  params["scale_1d"] = jax.ShapeDtypeStruct((4,), jnp.float32)
  mask = schedules.weight_decay_mask(params)
  assert mask["posterior"]["kernel"] and mask["decoder"]
  assert not mask["posterior"]["bias"] and not mask["decoder_bias"]
  assert not mask["scale_1d"]
  named = {"matrix_bias": jax.ShapeDtypeStruct((2, 2), jnp.float32)}
  assert not schedules.weight_decay_mask(named)["matrix_bias"]  # 2-D but named bias
  tx = optax.adamw(1e-3, weight_decay=0.1, mask=mask)
  jax.eval_shape(tx.init, params)  # the mask matches the params tree
  with pytest.raises(ValueError, match="total_steps"):
    schedules.cosine_weight_decay(0.1, 0.1, 0)
