"""Position embeddings for patch sequences: learned, and fixed 2-D sine-cosine."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)


def sincos_2d(height: int, width: int, dim: int, temperature: float = 10_000.0) -> np.ndarray:
  """Fixed 2-D sin-cos embedding, [1, height * width, dim], row-major over the patch grid.

  The layout follows big_vision's `posemb_sincos_2d` (MoCo v3): a quarter of the channels each
  for sin(x), cos(x), sin(y), cos(y), with frequencies temperature^(-i / (dim/4 - 1)).
  It is a numpy constant, so under jit it folds into the program instead of being a parameter.
  """
  if dim % 4:
    raise ValueError(f"sincos2d position embedding needs width % 4 == 0; got width={dim}.")
  y, x = np.mgrid[:height, :width]
  quarter = dim // 4
  omega = np.arange(quarter) / max(quarter - 1, 1)
  omega = 1.0 / (temperature ** omega)
  y = np.einsum("m,d->md", y.reshape(-1), omega)
  x = np.einsum("m,d->md", x.reshape(-1), omega)
  pe = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)
  return pe[None].astype(np.float32)


class LearnedPositionEmbedding(nnx.Module):
  """Adds a learned [1, N, D] table (axes None, None, 'embed') to [B, N, D] inputs.

  Initialised N(0, stddev) with stddev 1/sqrt(D) by default, as big_vision's ViT.
  """

  def __init__(self, num_positions: int, features: int, *, stddev: float | None = None,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    stddev = features ** -0.5 if stddev is None else stddev
    init = nnx.with_partitioning(nnx.initializers.normal(stddev), (None, None, "embed"))
    self.embedding = nnx.Param(init(rngs.params(), (1, num_positions, features), param_dtype))

  def __call__(self, x: jax.Array) -> jax.Array:
    return x + self.embedding[...].astype(x.dtype)
