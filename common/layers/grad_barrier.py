"""`cotangent_barrier`: identity forward; on CPU the backward materialises the incoming cotangent
(`fusion_barrier` does the same to a value in the forward pass).

Why: on XLA's CPU backend, the residual stream's gradient through a deep stack of pre-norm blocks
is a long chain of cheap elementwise adds (each block's LayerNorm backward joins it). XLA fuses
that chain into the transposing copies that feed each weight-gradient matmul and, because each
partial sum has several consumers, duplicates the whole chain into every one of them: block l's
fusion recomputes the gradient of every block above it, so the work grows with depth squared
(ViT-B/16 train step on 2 CPU cores: ~17% of the step, benchmarks/vision.py).

`jax.lax.optimization_barrier` does not stop it (jax 0.10.2: the compiled HLO keeps no barrier
and the step time did not change). A conditional does: no fusion crosses its boundary. So the
backward passes the cotangent through a `lax.cond` on a runtime predicate that is always true (a
value equals itself; for NaN the other branch returns the same value). The forward pass and all
values are unchanged. On GPU a conditional's predicate goes to the host, a sync per block, and the
GPU/TPU fusion passes do not duplicate like this, so there the barrier is the identity.
"""
from __future__ import annotations

import jax


def cotangent_barrier(x: jax.Array) -> jax.Array:
  """x unchanged; on CPU its cotangent becomes one buffer that every consumer reads."""
  if jax.default_backend() != "cpu":
    return x
  return _barrier(x)


def fusion_barrier(x: jax.Array) -> jax.Array:
  """x unchanged; on CPU one buffer that no consumer's fusion recomputes (the lax.cond of the
  module docstring, in the forward pass). For a producer whose consumers read it many times over,
  e.g. the shifted-sum convs of common.layers.conv."""
  if jax.default_backend() != "cpu":
    return x
  first = x.reshape(-1)[0]
  return jax.lax.cond(first == first, lambda t: t, lambda t: t * 1, x)


@jax.custom_vjp
def _barrier(x):
  return x


def _fwd(x):
  return x, None


def _bwd(_, g):
  return (fusion_barrier(g),)


_barrier.defvjp(_fwd, _bwd)
