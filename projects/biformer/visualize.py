"""What the notebook draws: the regions a query region routes to, over the input image.

`routed_regions(model, image, key)` runs the model once (eval mode) and returns, for every
query region of the BRA block `key` ("<stage>.<block>"), the top-k key regions it attends to,
as an (n_win, n_win, n_win, n_win) boolean array: `mask[qy, qx]` marks the routed regions of
query region (qy, qx) on the n_win x n_win region grid, which covers the whole image at every
stage (region r of a stage map is the same fraction of the image at any stride).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx


def routed_regions(model: nnx.Module, image: np.ndarray, key: str = "0.0") -> np.ndarray:
  """image: (H, W, C) as the model's input (normalised). Returns the boolean routing masks."""
  _, feats = model(jnp.asarray(image)[None], return_features=True)  # eval mode (train=False)
  if key not in feats.r_idx:
    raise ValueError(f"key={key!r} names no routed block; routed blocks: {sorted(feats.r_idx)}.")
  idx = np.asarray(feats.r_idx[key])[0]  # (R, topk)
  s = model.config.n_win
  mask = np.zeros((s * s, s * s), bool)
  np.put_along_axis(mask, idx, True, axis=1)
  return mask.reshape(s, s, s, s)


def region_overlay(mask: np.ndarray, height: int, width: int) -> np.ndarray:
  """An (n_win, n_win) region mask upsampled to an (height, width) pixel mask."""
  s = mask.shape[0]
  rows = np.minimum(np.arange(height) * s // height, s - 1)
  cols = np.minimum(np.arange(width) * s // width, s - 1)
  return mask[rows][:, cols]
