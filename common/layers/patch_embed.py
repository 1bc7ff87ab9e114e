"""Patch embedding: a stride-p convolution written as a linear map on flattened patches.

Each p x p x C patch is flattened in (row, column, channel) order, the order of a conv kernel
reshaped from HWIO to (H*W*I, O), so conv checkpoints load by a reshape. As a matmul it shards
like any other projection: kernel axes (None, 'embed').
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.layers import validation
from common.layers.linear import Linear


def patchify(images: jax.Array, patch_size: int) -> jax.Array:
  """[B, H, W, C] -> [B, (H/p) * (W/p), p * p * C], patches in row-major grid order."""
  b, h, w, c = images.shape
  p = patch_size
  x = images.reshape(b, h // p, p, w // p, p, c)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, (h // p) * (w // p), p * p * c)


class PatchEmbed(nnx.Module):
  """[B, H, W, C] images -> [B, N, D] patch tokens, N = (H/p)(W/p)."""

  def __init__(self, image_size: int | tuple[int, int], patch_size: int, channels: int,
               features: int, *, use_bias: bool = True,
               kernel_init=nnx.initializers.lecun_normal(), dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    validation.check_positive("patch_size", patch_size)
    validation.check_divides("image_size", height, "patch_size", patch_size)
    validation.check_divides("image_size", width, "patch_size", patch_size)
    self.image_size = (height, width)
    self.patch_size = patch_size
    self.grid = (height // patch_size, width // patch_size)
    self.proj = Linear(patch_size * patch_size * channels, features, use_bias=use_bias,
                       kernel_axes=(None, "embed"), kernel_init=kernel_init,
                       bias_init=nnx.initializers.zeros, dtype=dtype, param_dtype=param_dtype,
                       rngs=rngs)

  @property
  def num_patches(self) -> int:
    return self.grid[0] * self.grid[1]

  def __call__(self, images: jax.Array) -> jax.Array:
    if tuple(images.shape[1:3]) != self.image_size:
      raise ValueError(f"images of size {tuple(images.shape[1:3])} given to a patch embedding "
                       f"built for image_size={self.image_size}.")
    return self.proj(patchify(images, self.patch_size))
