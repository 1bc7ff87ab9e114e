"""Fixed 2-D sin-cos position embeddings, as the official I-JEPA ViT builds them.

Official: src/models/vision_transformer.py L22-79 (`get_2d_sincos_pos_embed`). Computed in float64
with numpy and cast to float32, as the official code does before copying into the Parameter.
"""
from __future__ import annotations

import numpy as np


def sincos_1d(embed_dim: int, pos: np.ndarray) -> np.ndarray:
  """(M,) positions -> (M, embed_dim) as [sin(pos*omega), cos(pos*omega)]."""
  if embed_dim % 2:
    raise ValueError(f"embed_dim={embed_dim} must be even for a sin-cos embedding.")
  omega = np.arange(embed_dim // 2, dtype=np.float64) / (embed_dim / 2.0)
  omega = 1.0 / 10000**omega
  out = np.einsum("m,d->md", np.asarray(pos, np.float64).reshape(-1), omega)
  return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(embed_dim: int, grid_size: int) -> np.ndarray:
  """(grid_size**2, embed_dim) float32 table for a square grid in row-major patch order.

  Quirk kept from the official code (vision_transformer.py L29-45): `np.meshgrid(grid_w, grid_h)`
  puts the *column* coordinate in grid[0], and grid[0] fills the first half of the channels (the
  half the official code calls "emb_h"). So channels [:D/2] encode the column, [D/2:] the row.
  """
  if embed_dim % 4:
    raise ValueError(f"embed_dim={embed_dim} must be divisible by 4 for a 2-D sin-cos embedding.")
  coords = np.arange(grid_size, dtype=np.float64)
  col, row = np.meshgrid(coords, coords)  # each (grid, grid); col varies along axis 1
  emb = np.concatenate([sincos_1d(embed_dim // 2, col), sincos_1d(embed_dim // 2, row)], axis=1)
  return emb.astype(np.float32)
