"""Dropout and DropPath (stochastic depth), in the house call convention.

`__call__(x, *, train=False, rngs=None)`: identity unless `train` and `rate > 0`; then one key is
drawn from `rngs.dropout()`, the only source of randomness (no layer owns an RNG stream, so
checkpoints hold none). `rngs` may be None whenever nothing is drawn; a missing `rngs` when one
is needed is a ValueError that says what to pass. The functions `dropout` / `drop_path` do the
same for code that keeps a rate rather than a module.

- Dropout: element-wise, kept values scaled by 1 / (1 - rate) (torch nn.Dropout, nnx.Dropout);
  `broadcast_dims` shares one mask along those axes.
- DropPath: one keep/drop draw per sample (axis 0), scaled by 1 / (1 - rate) (timm DropPath with
  scale_by_keep=True); use it on a residual branch: x + drop_path(f(x)).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from common.layers import validation


def _key(rngs: nnx.Rngs | None, what: str, rate: float) -> jax.Array:
  if rngs is None:
    raise ValueError(f"{what} rate={rate} is active (train=True, rate > 0) but rngs=None: pass "
                     "rngs=nnx.Rngs(dropout=...) (a 'dropout' stream) to the model call.")
  return rngs.dropout()


def dropout(x: jax.Array, rate: float, *, train: bool, rngs: nnx.Rngs | None = None,
            broadcast_dims: Sequence[int] = ()) -> jax.Array:
  """Element-wise dropout; identity unless `train` and `rate > 0`. rate 1 gives zeros."""
  if not train or rate == 0.0:
    return x
  key = _key(rngs, "dropout", rate)
  if rate >= 1.0:
    return jnp.zeros_like(x)
  keep = 1.0 - rate
  shape = list(x.shape)
  for d in broadcast_dims:
    shape[d] = 1
  mask = jnp.broadcast_to(jax.random.bernoulli(key, keep, shape), x.shape)
  return jax.lax.select(mask, x / keep, jnp.zeros_like(x))


def drop_path(x: jax.Array, rate: float, *, train: bool,
              rngs: nnx.Rngs | None = None) -> jax.Array:
  """Per-sample stochastic depth on a residual branch; identity unless `train` and `rate > 0`."""
  if not train or rate == 0.0:
    return x
  keep = 1.0 - rate
  shape = (x.shape[0],) + (1,) * (x.ndim - 1)
  mask = jax.random.bernoulli(_key(rngs, "drop_path", rate), keep, shape)
  return x * (mask.astype(x.dtype) / keep)


class Dropout(nnx.Module):
  """Element-wise dropout with a fixed rate in [0, 1]; see `dropout`."""

  def __init__(self, rate: float, *, broadcast_dims: Sequence[int] = ()):
    if not 0.0 <= float(rate) <= 1.0:
      raise ValueError(f"dropout rate={rate!r} must lie in [0, 1].")
    self.rate = float(rate)
    self.broadcast_dims = tuple(broadcast_dims)

  def __call__(self, x: jax.Array, *, train: bool = False, rngs: nnx.Rngs | None = None
               ) -> jax.Array:
    return dropout(x, self.rate, train=train, rngs=rngs, broadcast_dims=self.broadcast_dims)


class DropPath(nnx.Module):
  """Stochastic depth with a fixed rate in [0, 1); see `drop_path`."""

  def __init__(self, rate: float):
    validation.check_rate("drop path rate", rate)
    self.rate = float(rate)

  def __call__(self, x: jax.Array, *, train: bool = False, rngs: nnx.Rngs | None = None
               ) -> jax.Array:
    return drop_path(x, self.rate, train=train, rngs=rngs)


__all__ = ["Dropout", "DropPath", "dropout", "drop_path"]
