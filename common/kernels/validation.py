"""Argument checks of the sparse-attention ops; errors name argument, value and what is allowed."""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

FLOAT_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)


def check_qkv(q, k, v):
  """q [B, H, Tq, D]; k, v [B, H, Tk, D]; one floating dtype."""
  for name, x in (("q", q), ("k", k), ("v", v)):
    if getattr(x, "ndim", None) != 4:
      raise ValueError(
          f"{name}.shape={tuple(getattr(x, 'shape', ()))} must be 4-D "
          f"[B, H, T, D].")
    if jnp.dtype(x.dtype) not in [jnp.dtype(d) for d in FLOAT_DTYPES]:
      raise ValueError(
          f"{name}.dtype={x.dtype} is not supported; allowed: float32, "
          f"bfloat16, float16.")
  if k.shape != v.shape:
    raise ValueError(f"k.shape={tuple(k.shape)} and v.shape={tuple(v.shape)} "
                     f"must be equal.")
  if q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
    raise ValueError(
        f"q.shape={tuple(q.shape)} and k.shape={tuple(k.shape)} must agree on "
        f"B, H and D ([B, H, Tq, D] vs [B, H, Tk, D]).")
  if q.dtype != k.dtype or q.dtype != v.dtype:
    raise ValueError(f"q, k, v dtypes ({q.dtype}, {k.dtype}, {v.dtype}) must "
                     f"be equal.")


def check_block(name, block, length, length_name):
  if not isinstance(block, (int, np.integer)) or isinstance(block, bool) \
      or block <= 0:
    raise ValueError(f"{name}={block!r} must be a positive int.")
  if length % block:
    raise ValueError(
        f"{name}={block} must divide {length_name}={length}; allowed: the "
        f"divisors of {length} (common.kernels.block_size.choose_block_size "
        f"picks one).")


def check_int_array(name, x, *, ndim=None, shape=None):
  """Requires an int32 array of the given rank or shape."""
  if not hasattr(x, "dtype") or not hasattr(x, "shape"):
    raise ValueError(f"{name}={type(x).__name__} must be an int32 array.")
  if jnp.dtype(x.dtype) != jnp.dtype(jnp.int32):
    raise ValueError(f"{name}.dtype={x.dtype} is not supported; allowed: "
                     f"int32.")
  if ndim is not None and x.ndim != ndim:
    raise ValueError(f"{name}.shape={tuple(x.shape)} must be {ndim}-D.")
  if shape is not None and tuple(x.shape) != tuple(shape):
    raise ValueError(f"{name}.shape={tuple(x.shape)} must be {tuple(shape)}.")


def check_scale(scale, head_dim):
  """Returns the float scale (default head_dim ** -0.5)."""
  if scale is None:
    return 1.0 / math.sqrt(head_dim)
  if isinstance(scale, bool) or not isinstance(scale, (int, float, np.number)) \
      or not math.isfinite(float(scale)):
    raise ValueError(f"scale={scale!r} must be a finite Python number or None.")
  return float(scale)


def triton_fits(q, block_q, block_k):
  """Whether the Triton kernels accept these tiles (power-of-two sizes >= 16)."""

  def pow2_16(n):
    return n >= 16 and n & (n - 1) == 0

  return (pow2_16(block_q) and pow2_16(block_k) and pow2_16(q.shape[-1]) and
          jnp.dtype(q.dtype) in [jnp.dtype(d) for d in FLOAT_DTYPES])
