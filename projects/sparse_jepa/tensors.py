"""Token gathers of the official I-JEPA code (src/masks/utils.py, src/utils/tensors.py).

Its trunc_normal initialiser is `common.layers.initializers.trunc_normal`.

Masks are index lists: a sequence of M int arrays of shape (B, K), or one stacked (M, B, K) array.
Candidates for common/layers: `apply_masks` and `repeat_interleave_batch` are generic.
"""
from __future__ import annotations

from typing import Sequence, Union

import jax
import jax.numpy as jnp

Masks = Union[jax.Array, Sequence[jax.Array]]


def stack_masks(masks: Masks) -> jax.Array:
  """Returns masks as one int32 (M, B, K) array; a single (B, K) array counts as M=1."""
  if isinstance(masks, (list, tuple)):
    if not masks:
      raise ValueError("masks is an empty list; at least one (B, K) index array is needed.")
    shapes = {tuple(m.shape) for m in masks}
    if len(shapes) != 1:
      raise ValueError(f"masks have shapes {sorted(shapes)}; all must share one (B, K) shape "
                       "(the collator truncates them to the batch minimum).")
    masks = jnp.stack([jnp.asarray(m) for m in masks])
  masks = jnp.asarray(masks)
  if masks.ndim == 2:
    masks = masks[None]
  if masks.ndim != 3 or not jnp.issubdtype(masks.dtype, jnp.integer):
    raise ValueError(f"masks has shape {masks.shape} and dtype {masks.dtype}; allowed: integer "
                     "(B, K), (M, B, K) or a list of (B, K).")
  return masks.astype(jnp.int32)


def apply_masks(x: jax.Array, masks: Masks) -> jax.Array:
  """Gathers the listed tokens: (B, N, D) -> (M*B, K, D), mask-major as torch.cat over masks.

  Official: src/masks/utils.py `apply_masks` (torch.gather per mask, then cat along batch).
  """
  m = stack_masks(masks)
  num_masks, batch, keep = m.shape
  if x.shape[0] != batch:
    raise ValueError(f"masks have batch {batch} but x has batch {x.shape[0]} (x.shape={x.shape}).")
  out = jnp.take_along_axis(x[None], m[..., None], axis=2)  # (M, B, K, D)
  return out.reshape(num_masks * batch, keep, x.shape[-1])


def repeat_interleave_batch(x: jax.Array, batch: int, repeat: int) -> jax.Array:
  """Repeats each consecutive chunk of `batch` rows `repeat` times, chunk by chunk.

  Official: src/utils/tensors.py `repeat_interleave_batch`: [c0, c0, ..., c1, c1, ...] with
  chunk c_i = x[i*B:(i+1)*B]. This fixes the row order "target block, context block, batch".
  """
  if x.shape[0] % batch:
    raise ValueError(f"x has {x.shape[0]} rows, not a multiple of batch={batch}.")
  chunks = x.reshape(x.shape[0] // batch, 1, batch, *x.shape[1:])
  chunks = jnp.broadcast_to(chunks, (chunks.shape[0], repeat, *chunks.shape[2:]))
  return chunks.reshape(-1, *x.shape[1:])
