"""Input embeddings: text tokens (+ optional sinusoidal positions) and raster-order pixels.

config.model.positions chooses how absolute position enters the model:

  'none'        official text sets: no absolute positions, position information comes only from
                the Shaw relative terms of the attention (TF `add_timing_signal=False`).
  'sinusoidal'  NOT in the official text sets: the T2T 1-D timing signal (sin | cos halves,
                timescales 1 .. 1e4) added after `emb_dense`. It lets a model without relative
                positions (so every head can run `common.kernels.block_sparse_attention`, see the
                CPU demo configs/stdlib_demo.py) still know where it is.
  'learned_nd'  official image sets (`sparse_image_transformer.py`): per-channel pixel embeddings
                and a learned n-d positional embedding, see `PixelEmbedding`.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from projects.routing_transformer.config import PIXEL_VALUES


def timing_signal(positions: jax.Array, channels: int, min_timescale: float = 1.0,
                  max_timescale: float = 1.0e4) -> jax.Array:
  """T2T `get_timing_signal_1d` at integer `positions` [n] -> float32 [n, channels]."""
  num_timescales = channels // 2
  log_increment = math.log(max_timescale / min_timescale) / max(num_timescales - 1, 1)
  inv = min_timescale * np.exp(np.arange(num_timescales) * -log_increment).astype(np.float32)
  scaled = jnp.asarray(positions, jnp.float32)[:, None] * inv[None, :]
  signal = jnp.concatenate([jnp.sin(scaled), jnp.cos(scaled)], axis=1)
  return jnp.pad(signal, ((0, 0), (0, channels % 2)))


def raster_coordinates(positions: jax.Array, image_shape: tuple[int, int, int]):
  """Flat raster positions -> (row, column, channel); the sequence is the [H, W, C] reshape."""
  _, w, c = image_shape
  positions = jnp.asarray(positions, jnp.int32)
  return positions // (w * c), (positions // c) % w, positions % c


class PixelEmbedding(nnx.Module):
  """TF `get_channel_embeddings` + `add_positional_embedding_nd` on a flattened image.

  The official model embeds the right-shifted image [B, H, W, C] channel by channel from one
  table [256 * C, hidden] scaled by sqrt(hidden) (id + 256 * c for the channel c *of the
  position*, so the shifted-in value of the previous channel is embedded with this position's
  channel offset), concatenates the channels to [B, H, W, C * hidden] and adds one learned
  table per spatial axis, [max(H, W, C), C * hidden] each, initialised N(0, depth^-1/2) and
  multiplied by sqrt(depth) (depth = C * hidden). After the reshape to [B, H*W*C, hidden],
  position (h, w, c) therefore gets rows h and w of those tables, channel c's slice. This module
  computes the same thing directly on flat positions, so decoding can embed one token at a time.
  """

  def __init__(self, image_shape: tuple[int, int, int], hidden: int, *, kernel_init,
               dtype: Any = None, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    h, w, c = image_shape
    self.image_shape, self.hidden, self.dtype = (h, w, c), hidden, dtype
    init = nnx.with_partitioning(kernel_init, (None, "embed"))
    self.channel_table = nnx.Param(init(rngs.params(), (PIXEL_VALUES * c, hidden), param_dtype))
    depth = c * hidden
    max_length = max(h, w, c)
    pos_init = nnx.with_partitioning(nnx.initializers.normal(depth ** -0.5), (None, None, "embed"))
    self.row_table = nnx.Param(pos_init(rngs.params(), (max_length, c, hidden), param_dtype))
    self.column_table = nnx.Param(pos_init(rngs.params(), (max_length, c, hidden), param_dtype))

  def __call__(self, tokens: jax.Array, positions: jax.Array) -> jax.Array:
    """tokens [B, n] pixel values in [0, 256) at flat `positions` [n] -> [B, n, hidden]."""
    row, col, chan = raster_coordinates(positions, self.image_shape)
    table = self.channel_table[...] * self.hidden ** 0.5
    x = jnp.take(table, tokens + PIXEL_VALUES * chan[None, :], axis=0)
    depth_scale = (self.image_shape[2] * self.hidden) ** 0.5
    pos = (self.row_table[...][row, chan] + self.column_table[...][col, chan]) * depth_scale
    x = x + pos[None]
    return x.astype(self.dtype) if self.dtype is not None else x
