"""Argument checks of the sparse-attention ops; errors name argument, value and what is allowed."""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

FLOAT_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)


def check_qkv(q, k, v):
  """q [B, H, Tq, D]; k, v [B, H_kv, Tk, D] with H % H_kv == 0 (GQA/MQA); one floating dtype.

  Returns the group size G = H // H_kv (query head h reads kv head h // G).
  """
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
  if q.shape[0] != k.shape[0] or q.shape[3] != k.shape[3]:
    raise ValueError(
        f"q.shape={tuple(q.shape)} and k.shape={tuple(k.shape)} must agree on "
        f"B and D ([B, H, Tq, D] vs [B, H_kv, Tk, D]).")
  h, h_kv = q.shape[1], k.shape[1]
  if h_kv < 1 or h % h_kv:
    raise ValueError(
        f"k.shape[1]={h_kv} kv heads must divide q.shape[1]={h} query heads "
        f"(GQA/MQA: query head h reads kv head h // (H // H_kv)); allowed: "
        f"the divisors of {h}.")
  if q.dtype != k.dtype or q.dtype != v.dtype:
    raise ValueError(f"q, k, v dtypes ({q.dtype}, {k.dtype}, {v.dtype}) must "
                     f"be equal.")
  return h // h_kv


def check_segment_ids(q_segment_ids, kv_segment_ids, *, batch, tq, tk):
  """Both or neither; int32 [B, Tq] and [B, Tk]."""
  if (q_segment_ids is None) != (kv_segment_ids is None):
    given, missing = (("q_segment_ids", "kv_segment_ids")
                      if kv_segment_ids is None else
                      ("kv_segment_ids", "q_segment_ids"))
    raise ValueError(f"{given} was given without {missing}; pass both "
                     f"(int32 [B, Tq] and [B, Tk]) or neither.")
  if q_segment_ids is not None:
    check_int_array("q_segment_ids", q_segment_ids, shape=(batch, tq))
    check_int_array("kv_segment_ids", kv_segment_ids, shape=(batch, tk))


def check_rel_tables(rel_keys, rel_values, *, heads, head_dim):
  """Shaw tables: float [R, D] (shared) or [H, R, D] (per query head), R = 2M + 1 odd.

  Returns the max distance M, or None when neither table is given.
  """
  rows = None
  for name, table in (("rel_keys", rel_keys), ("rel_values", rel_values)):
    if table is None:
      continue
    shape = tuple(getattr(table, "shape", ()))
    dtype = getattr(table, "dtype", None)
    if dtype is None or jnp.dtype(dtype) not in [jnp.dtype(d)
                                                 for d in FLOAT_DTYPES]:
      raise ValueError(f"{name}.dtype={dtype} is not supported; allowed: "
                       f"float32, bfloat16, float16.")
    if len(shape) not in (2, 3) or shape[-1] != head_dim or (
        len(shape) == 3 and shape[0] != heads):
      raise ValueError(
          f"{name}.shape={shape} must be [R, D] (shared by all heads) or "
          f"[H, R, D] (per query head) with D={head_dim}, H={heads}.")
    if shape[-2] % 2 != 1:
      raise ValueError(
          f"{name}.shape={shape}: R={shape[-2]} must be odd (R = "
          f"2 * max_distance + 1 rows for distances -max_distance..max_distance).")
    if rows is not None and shape[-2] != rows:
      raise ValueError(f"rel_keys and rel_values must have the same number of "
                       f"rows R; got {rows} and {shape[-2]}.")
    rows = shape[-2]
  return None if rows is None else (rows - 1) // 2


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
