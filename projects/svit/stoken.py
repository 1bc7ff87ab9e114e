"""Super Token Attention (official `StokenAttention`, hhb072/STViT models/stvit.py L155-276).

NHWC throughout. A stage's map (B, H, W, C) is cut into h x w pixel blocks, one super token
per block. Each pixel is softly associated with the 3x3 neighbourhood of super tokens around
its block; super tokens are the association-weighted means of pixels, refined by MHSA, and
mapped back to pixels through the same association.

The official code gathers and scatters the 3x3 neighbourhoods with frozen identity-kernel
convolutions (`Unfold`, `Fold`: conv2d / conv_transpose2d, padding 1). Here they are plain
shifts (`unfold`, `fold`), so the model has no frozen constants at all. Border semantics are
the official ones: neighbours outside the grid are zero vectors (they still take softmax mass,
exp(0)), and fold drops contributions that fall off the grid.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from projects.svit import attention

# Neighbour slot k = (dy + 1) * 3 + (dx + 1), row-major, as the identity kernels of the
# official Unfold/Fold (torch.eye(9).reshape(9, 1, 3, 3), L129-131).
_OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def unfold(s: jax.Array) -> jax.Array:
  """Gathers the 3x3 neighbourhood of each grid cell: (B, hh, ww, X) -> (B, hh, ww, 9, X).

  Slot k of cell (i, j) holds s[i + dy, j + dx], zero outside the grid.
  """
  hh, ww = s.shape[1], s.shape[2]
  padded = jnp.pad(s, ((0, 0), (1, 1), (1, 1), (0, 0)))
  views = [padded[:, 1 + dy:1 + dy + hh, 1 + dx:1 + dx + ww] for dy, dx in _OFFSETS]
  return jnp.stack(views, axis=3)


def fold(n: jax.Array) -> jax.Array:
  """Adjoint of `unfold`: (B, hh, ww, 9, X) -> (B, hh, ww, X).

  Slot k of cell (i, j) is added into cell (i + dy, j + dx); what falls off the grid is
  dropped (the official conv_transpose2d with padding 1, L150-153).
  """
  hh, ww = n.shape[1], n.shape[2]
  total = None
  for k, (dy, dx) in enumerate(_OFFSETS):
    # Place slot k at offset (dy, dx) inside a 1-cell border, then crop the border.
    shifted = jnp.pad(n[:, :, :, k], ((0, 0), (1 + dy, 1 - dy), (1 + dx, 1 - dx), (0, 0)))
    total = shifted if total is None else total + shifted
  return total[:, 1:1 + hh, 1:1 + ww]


def _association_step(pixels: jax.Array, stokens: jax.Array, scale: float) -> jax.Array:
  """Softmax association of each pixel with its 9 neighbour super tokens (L208-212).

  pixels (B, hh, ww, p, C), stokens (B, hh, ww, C) -> (B, hh, ww, p, 9).
  """
  neighbours = unfold(stokens)
  logits = jnp.einsum("bijpc,bijkc->bijpk", pixels, neighbours) * scale
  dtype = logits.dtype
  return jax.nn.softmax(logits.astype(jnp.promote_types(dtype, jnp.float32)), -1).astype(dtype)


def _aggregate(pixels: jax.Array, assoc: jax.Array) -> jax.Array:
  """Unnormalised super tokens: fold(Pᵀ A), (B, hh, ww, C) (L218-220, L227-229)."""
  return fold(jnp.einsum("bijpc,bijpk->bijkc", pixels, assoc))


def associate(pixels: jax.Array, stokens: jax.Array, *, n_iter: int,
              scale: float) -> tuple[jax.Array, jax.Array]:
  """Runs the association iterations; returns (A, fold(sum_p A)) without gradients.

  pixels (B, hh, ww, p, C) and initial super tokens (B, hh, ww, C) give the association A
  (B, hh, ww, p, 9) and the association mass each super token receives (B, hh, ww, 1).
  The official loop runs under torch.no_grad (L206-224): no gradient flows through A, its
  fold-sum, or the intermediate super tokens of extra iterations.
  """
  pixels = jax.lax.stop_gradient(pixels)
  stokens = jax.lax.stop_gradient(stokens)
  for it in range(n_iter):
    assoc = _association_step(pixels, stokens, scale)
    assoc_sum = fold(jnp.sum(assoc, axis=3)[..., None])
    if it < n_iter - 1:
      stokens = _aggregate(pixels, assoc) / (assoc_sum + 1e-12)
  return assoc, assoc_sum


class StokenAttention(nnx.Module):
  """Super-token attention of one block; global MHSA when stoken_size is (1, 1).

  `grid` (not an official option; the BiFormer token-mixer ablation's 'stoken' mixer) sets
  the number of super tokens per side instead of their size: each call then uses
  stoken_size = ceil(H / grid) x ceil(W / grid), one super token per region of a grid x grid
  partition when grid divides the map (fewer, padded as usual, when it does not).
  """

  def __init__(self, dim: int, stoken_size: tuple[int, int] = (1, 1), *, n_iter: int = 1,
               grid: int | None = None,
               num_heads: int = 8, qkv_bias: bool = False, qk_scale: float | None = None,
               attn_drop: float = 0.0, proj_drop: float = 0.0, dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: Any):
    if n_iter < 1:
      # The official loop must run once to define the association (L206-224).
      raise ValueError(f"n_iter={n_iter} must be >= 1.")
    if grid is not None and grid < 1:
      raise ValueError(f"grid={grid} must be >= 1 super tokens per side.")
    self.stoken_size = tuple(stoken_size)
    self.grid = grid
    self.n_iter = n_iter
    # The association scale uses the full channel dim, not the head dim (L164).
    self.scale = dim ** -0.5
    self.stoken_refine = attention.RefineAttention(
        dim, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
        proj_drop=proj_drop, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Maps a normalised map (B, H, W, C) to (B, H, W, C)."""
    h, w = self._size(x.shape[1], x.shape[2])
    if h == 1 and w == 1:
      b, hgt, wid, c = x.shape  # official direct_forward (L260-270)
      out = self.stoken_refine(x.reshape(b, hgt * wid, c), train=train, rngs=rngs)
      return out.reshape(b, hgt, wid, c)
    return self._stoken_forward(x, train=train, rngs=rngs)

  def _size(self, h0: int, w0: int) -> tuple[int, int]:
    if self.grid is None:
      return self.stoken_size
    return -(-h0 // self.grid), -(-w0 // self.grid)

  def _stoken_forward(self, x, *, train, rngs):
    b, h0, w0, c = x.shape
    h, w = self._size(h0, w0)
    # Zero-pad right/bottom to whole blocks (L187-193); padded pixels take part in everything.
    pad_b, pad_r = (-h0) % h, (-w0) % w
    if pad_b or pad_r:
      x = jnp.pad(x, ((0, 0), (0, pad_b), (0, pad_r), (0, 0)))
    hh, ww = x.shape[1] // h, x.shape[2] // w
    pixels = x.reshape(b, hh, h, ww, w, c).transpose(0, 1, 3, 2, 4, 5).reshape(
        b, hh, ww, h * w, c)
    # adaptive_avg_pool2d to (hh, ww) on a padded map = plain block means (L199).
    stokens = jnp.mean(pixels, axis=3)

    assoc, assoc_sum = associate(pixels, stokens, n_iter=self.n_iter, scale=self.scale)
    # Final super tokens keep the gradient through the pixels (L227-231). The division by
    # the received association mass does not renormalise per pixel (border slots leak mass).
    stokens = _aggregate(pixels, assoc) / (assoc_sum + 1e-12)
    stokens = self.stoken_refine(stokens.reshape(b, hh * ww, c), train=train, rngs=rngs)
    stokens = stokens.reshape(b, hh, ww, c)

    # Map back: each pixel mixes its 9 neighbour super tokens by its association (L244-249).
    out = jnp.einsum("bijkc,bijpk->bijpc", unfold(stokens), assoc)
    out = out.reshape(b, hh, ww, h, w, c).transpose(0, 1, 3, 2, 4, 5).reshape(
        b, hh * h, ww * w, c)
    return out[:, :h0, :w0]
