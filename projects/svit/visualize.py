"""What the notebook draws: super-token association maps of one image.

`association(model, image, stage=0, block=0)` runs the model (eval mode) up to that block's
super-token attention and returns its association: for every pixel of the stage map, the
softmax weights over its 3x3 neighbouring super tokens (the paper's Q^t), as
`(weights (H, W, 9), super-token index (H, W, 9) into the hh x ww grid, (hh, ww))`.
`hard_assignment` turns that into the super token each pixel belongs to most, i.e. the
image's over-segmentation into super tokens.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from projects.svit import stoken


def association(model: nnx.Module, image: np.ndarray, *, stage: int = 0, block: int = 0):
  x = jnp.asarray(image)[None]
  x = model.patch_embed(x, train=False)
  for i, layer in enumerate(model.layers):
    if i == stage:
      break
    _, x = layer(x, train=False)
  layer = model.layers[stage]
  for blk in layer.blocks[:block]:
    x = blk(x, train=False)
  blk = layer.blocks[block]
  x = x + blk.pos_embed(x)
  x = blk.norm1(x)
  attn = blk.attn
  h, w = attn.stoken_size
  if (h, w) == (1, 1):
    raise ValueError(f"stage {stage} has stoken_size (1, 1): global attention, no super tokens.")
  _, h0, w0, c = x.shape
  x = jnp.pad(x, ((0, 0), (0, (-h0) % h), (0, (-w0) % w), (0, 0)))
  hh, ww = x.shape[1] // h, x.shape[2] // w
  pixels = x.reshape(1, hh, h, ww, w, c).transpose(0, 1, 3, 2, 4, 5).reshape(1, hh, ww, h * w, c)
  assoc, _ = stoken.associate(pixels, pixels.mean(axis=3), n_iter=attn.n_iter, scale=attn.scale)
  weights = np.asarray(assoc[0]).reshape(hh, ww, h, w, 9).transpose(0, 2, 1, 3, 4)
  weights = weights.reshape(hh * h, ww * w, 9)[:h0, :w0]
  # Neighbour slot k of block (i, j) is super token (i + dy, j + dx); -1 outside the grid.
  index = np.full((hh * h, ww * w, 9), -1, np.int64)
  for k, (dy, dx) in enumerate(stoken._OFFSETS):  # pylint: disable=protected-access
    ii, jj = np.meshgrid(np.arange(hh * h) // h + dy, np.arange(ww * w) // w + dx, indexing="ij")
    inside = (ii >= 0) & (ii < hh) & (jj >= 0) & (jj < ww)
    index[..., k] = np.where(inside, ii * ww + jj, -1)
  return weights, index[:h0, :w0], (hh, ww)


def hard_assignment(weights: np.ndarray, index: np.ndarray) -> np.ndarray:
  """(H, W) id of the super token with the largest association (slots outside ignored)."""
  w = np.where(index >= 0, weights, -np.inf)
  return np.take_along_axis(index, np.argmax(w, axis=-1)[..., None], axis=-1)[..., 0]


def soft_map(weights: np.ndarray, index: np.ndarray, token: int) -> np.ndarray:
  """(H, W) association of every pixel with super token `token` (0 where not a neighbour)."""
  return np.sum(np.where(index == token, weights, 0.0), axis=-1)
