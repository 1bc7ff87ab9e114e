"""Init-time random keys: the one helper every model builds its parameters with.

`KeyStream` hands out `fold_in(root, n)` for n = 1, 2, ... with a Python counter. Layers call
`rngs.params()`, so a KeyStream can be passed wherever a layer constructor takes `rngs` (ours and
Flax's). Why not `nnx.Rngs` itself: every `rngs.params()` writes its counter Variable, and under a
trace (`jax.jit` / `nnx.eval_shape` of an init) each write inspects the tracer's sharding, which
builds an error message by walking the whole trace so far; init tracing becomes quadratic in the
number of parameters (flax 0.12 / jax 0.10: a 4B-parameter Monet preset took ~10 s just to count,
SViT-L much longer). A model draws one key from its `nnx.Rngs` and shares one KeyStream with all
of its submodules (`KeyStream.of(rngs)` passes a KeyStream through unchanged).

`init_keys(rngs, impl="rbg")` also re-keys the stream on another PRNG implementation. On CPU, XLA
compiles threefry's hash rounds once per parameter draw (the tiny demo SViT's jitted init: 22 s
of CPU with threefry, 8 s with rbg). Only the drawn values change, not their distribution, and
the key still depends on the trainer's seed alone.

`param(init, axes, key, shape, dtype)` creates an `nnx.Param` carrying logical axis names.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)

Axes = Sequence[str | None]


class KeyStream:
  """A stand-in for `nnx.Rngs` at construction: `.params()` (or calling it) yields fresh keys."""

  def __init__(self, root: jax.Array):
    self._root = root
    self._count = 0

  @classmethod
  def of(cls, rngs: "nnx.Rngs | KeyStream | jax.Array") -> "KeyStream":
    """A parent's KeyStream unchanged, or a new one rooted at one draw of `rngs.params()`
    (or at a key array)."""
    if isinstance(rngs, KeyStream):
      return rngs
    if isinstance(rngs, nnx.Rngs):
      return cls(rngs.params())
    return cls(rngs)

  def params(self) -> jax.Array:
    self._count += 1
    return jax.random.fold_in(self._root, self._count)

  __call__ = params


def init_keys(rngs: "nnx.Rngs | KeyStream", *, impl: str | None = None) -> KeyStream:
  """The key stream for building a model from the trainer's `nnx.Rngs`.

  `impl` (e.g. 'rbg') re-keys the stream on that PRNG implementation, from a seed drawn from
  `rngs`, so it still depends on the trainer's seed alone (see the module docstring).
  """
  stream = KeyStream.of(rngs)
  if impl is None:
    return stream
  seed = jax.random.randint(stream.params(), (), 0, jnp.iinfo(jnp.int32).max)
  return KeyStream(jax.random.key(seed, impl=impl))


def next_key(key: Any) -> jax.Array | None:
  """A key from a KeyStream / nnx.Rngs (`.params()`), a KeySeq-like callable, or a key itself.

  None stays None, for initialisers that draw nothing (ones, zeros, constants).
  """
  if key is None:
    return None
  if hasattr(key, "params"):
    return key.params()
  if callable(key):
    return key()
  return key


def param(init: Callable[..., jax.Array], axes: Axes, key: Any, shape: Sequence[int],
          dtype: Any = jnp.float32) -> nnx.Param:
  """An `nnx.Param` from `init(key, shape, dtype)` with logical axis names `axes`.

  `key` is anything `next_key` takes (a KeyStream, nnx.Rngs, a key, or None for inits that draw
  nothing).
  """
  axes = tuple(axes)
  if len(axes) != len(shape):
    raise ValueError(f"param axes={axes} do not match shape={tuple(shape)}: one logical axis "
                     "name (or None) per dimension.")
  return nnx.Param(nnx.with_partitioning(init, axes)(next_key(key), tuple(shape), dtype))
