"""Row-sparse attention: every query attends to its own list of keys (SEA masks, top-k attention).

    o = row_sparse_attention(q, k, v, key_indices)  # key_indices [B, H, Tq, K]

Shapes: q [B, H, Tq, D], k and v [B, H_kv, Tk, D] with H % H_kv == 0,
key_indices int32 [B, H, Tq, K] (per *query* head), key_valid optional bool
[B, H, Tq, K], q_segment_ids / kv_segment_ids optional int32 [B, Tq] / [B, Tk].

Semantics:
* Each query's list is a *set* of keys: entries with key_valid False, -1,
  out-of-range values and duplicates are ignored (values cannot be checked
  under jit, so they are dropped rather than raised on).
* Segment ids (both or neither, as JAX's splash attention): a listed key
  whose segment differs from the query's is dropped. The lists are explicit
  per query, so the op applies this rule to them once (O(Tq * K), before any
  impl runs) and every impl inherits it, forward and backward.
* GQA / MQA: k and v may have H_kv heads; query head h reads kv head
  h // (H // H_kv), never through a repeated copy: the XLA path gathers rows
  of the kv head and scatter-adds dk/dv into [B, H_kv, Tk, D] directly; the
  Pallas bodies map the query head to its kv head in the k/v index maps and
  write per-query-head f32 dk/dv [B, H, Tk, D] (backward only) that are
  summed over each group afterwards.
* A query with no admissible key returns 0 (and gradients 0), never NaN.
* return_lse=True also returns the f32 log-sum-exp [B, H, Tq]; -inf for a
  query with no admissible key (see attention_math).
* scale defaults to D ** -0.5; the output has q's dtype; f32 and bf16 inputs.
* Positions/causality are whatever the lists say: SEA's causal masks list only
  keys <= the query. (No relative-position tables here: block_sparse_attention
  has them.)

Implementations (impl, see dispatch.py):
* "xla": per-query gather of K keys, O(Tq * K * D) memory (row_sparse_xla).
* GPU body (row_sparse_gpu): per-query gathers inside a Triton kernel, dk/dv
  from (query, key) pairs sorted by key.
* TPU body: the block-sparse TPU kernels (block_sparse_tpu) run over the kv
  blocks touched by each query block's keys (sparse_indices.touched_blocks,
  at most min(block_q * K, nK) per query block) with an in-tile mask rebuilt
  from the key lists. This keeps MXU tiles and scalar-prefetched DMA, at the
  cost of computing full tiles; it suits clustered lists (SEA's estimated
  masks are locally dense) and degrades towards dense for scattered ones.
* Tiles are chosen here (the signature has no block arguments): 128 x 128 on
  TPU, 32-query / 32-key tiles on GPU, and 16 in interpret modes so that small
  test shapes still span several tiles. Tq and Tk are padded with empty
  queries / never-listed keys to tile multiples inside the op.

Differentiation: jax.custom_vjp (flash-attention-2 style recompute from the
saved lse) for every impl but "reference" (plain autodiff of a dense mask).

Sharding: independent per batch element and head; under shard_map use
P('data', 'model', None, None) for q, k, v, key_indices and key_valid and
P('data', None) for segment ids (with GQA, whole groups per shard: H and H_kv
both divisible by the 'model' axis size; the same shard_map caveat for
impl="interpret" as in block_sparse_attention).
Works under jit and vmap; second-order derivatives are not supported.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from common.kernels import attention_math
from common.kernels import block_size as block_size_lib
from common.kernels import block_sparse_tpu
from common.kernels import dispatch
from common.kernels import extras as extras_lib
from common.kernels import gpu_support
from common.kernels import pallas_support
from common.kernels import row_sparse_gpu
from common.kernels import row_sparse_xla
from common.kernels import sparse_indices
from common.kernels import validation

# (query tile, key tile) per resolved impl; see the module docstring.
_TILES = {
    dispatch.PALLAS_TPU: (128, 128),
    dispatch.INTERPRET_TPU: (16, 16),
    dispatch.PALLAS_GPU: (32, 32),
    dispatch.INTERPRET_GPU: (16, 16),
}
# Pairs per step of the GPU dk/dv loop (>= 16 for tensor-core dots).
_GPU_PAIR_CHUNK = 16


@dataclasses.dataclass(frozen=True)
class _Config:
  scale: float
  impl: str


def _validate(q, k, v, key_indices, key_valid, scale, q_segment_ids,
              kv_segment_ids):
  validation.check_qkv(q, k, v)
  b, h, tq, _ = q.shape
  validation.check_int_array("key_indices", key_indices, ndim=4)
  if tuple(key_indices.shape[:3]) != (b, h, tq) or key_indices.shape[3] < 1:
    raise ValueError(
        f"key_indices.shape={tuple(key_indices.shape)} must be "
        f"{(b, h, tq, 'K')} = (B, H, Tq, K) with K >= 1.")
  if key_valid is not None:
    if getattr(key_valid, "dtype", None) != jnp.bool_:
      raise ValueError(f"key_valid.dtype={getattr(key_valid, 'dtype', None)} "
                       f"is not supported; allowed: bool.")
    if tuple(key_valid.shape) != tuple(key_indices.shape):
      raise ValueError(f"key_valid.shape={tuple(key_valid.shape)} must equal "
                       f"key_indices.shape={tuple(key_indices.shape)}.")
  validation.check_segment_ids(q_segment_ids, kv_segment_ids, batch=b, tq=tq,
                               tk=k.shape[2])
  return validation.check_scale(scale, q.shape[-1])


def row_sparse_attention(q, k, v, key_indices, *, key_valid=None,
                         q_segment_ids=None, kv_segment_ids=None, scale=None,
                         return_lse: bool = False, impl: str = "auto"):
  """Attention of each query to its own listed keys.

  Args:
    q: [B, H, Tq, D] queries (f32 or bf16).
    k: [B, H_kv, Tk, D] keys, same dtype; H % H_kv == 0 (GQA/MQA).
    v: [B, H_kv, Tk, D] values, same dtype.
    key_indices: int32 [B, H, Tq, K]; -1 = empty slot.
    key_valid: optional bool [B, H, Tq, K]; False = empty slot.
    q_segment_ids: optional int32 [B, Tq]; with kv_segment_ids, a query sees
      only listed keys of its segment.
    kv_segment_ids: optional int32 [B, Tk].
    scale, return_lse, impl: as for block_sparse_attention.block_sparse_attention.

  Returns:
    o [B, H, Tq, D] in q.dtype, or (o, lse) if return_lse.

  Raises:
    ValueError: on bad shapes, dtypes or impl.
  """
  dispatch.validate_impl(impl)
  # numpy inputs would reach the XLA path's traced gathers as host arrays and fail there.
  q, k, v = jnp.asarray(q), jnp.asarray(k), jnp.asarray(v)
  scale = _validate(q, k, v, key_indices, key_valid, scale, q_segment_ids,
                    kv_segment_ids)
  gpu_fits = validation.triton_fits(q, 16, 16)
  resolved = dispatch.resolve_impl(impl, kernel_fits_gpu=gpu_fits)
  if resolved == dispatch.PALLAS_GPU and not gpu_fits:
    raise ValueError(
        f"impl='pallas_gpu' needs D={q.shape[-1]} to be a power of two >= 16; "
        f"use impl='auto' or 'xla' for other shapes.")
  if resolved == dispatch.REFERENCE:
    return row_sparse_attention_reference(
        q, k, v, key_indices, key_valid=key_valid, q_segment_ids=q_segment_ids,
        kv_segment_ids=kv_segment_ids, scale=scale, return_lse=return_lse)
  if key_valid is not None:
    key_indices = jnp.where(key_valid, key_indices, -1)
  if q_segment_ids is not None:
    key_indices = _same_segment(key_indices, q_segment_ids, kv_segment_ids)
  rows = sparse_indices.compact_unique(key_indices, k.shape[2])
  o, lse = _row_sparse(_Config(scale=scale, impl=resolved), q, k, v, rows)
  return (o, lse) if return_lse else o


def _same_segment(key_indices, q_segment_ids, kv_segment_ids):
  """Drops (-1) the listed keys whose segment id differs from their query's."""
  b, tk = kv_segment_ids.shape
  bi = jnp.arange(b)[:, None, None, None]
  key_seg = kv_segment_ids[bi, jnp.clip(key_indices, 0, tk - 1)]
  same = key_seg == q_segment_ids[:, None, :, None]
  return jnp.where(same, key_indices, -1)


def _pad_axis2(x, multiple, fill):
  pad = -x.shape[2] % multiple
  if not pad:
    return x
  widths = [(0, 0)] * x.ndim
  widths[2] = (0, pad)
  return jnp.pad(x, widths, constant_values=fill)


def _padded(cfg, q, k, v, rows):
  """Pads Tq, Tk to tile multiples (and K to a power of two on GPU)."""
  bq, bk = _TILES[cfg.impl]
  q, rows = _pad_axis2(q, bq, 0), _pad_axis2(rows, bq, -1)
  k, v = _pad_axis2(k, bk, 0), _pad_axis2(v, bk, 0)
  if cfg.impl in dispatch.GPU_BODY_IMPLS:
    kk = rows.shape[-1]
    rows = jnp.pad(rows, [(0, 0)] * 3 +
                   [(0, block_size_lib.next_power_of_2(kk) - kk)],
                   constant_values=-1)
  return q, k, v, rows


def _forward(cfg, q, k, v, rows):
  if cfg.impl == dispatch.XLA:
    return row_sparse_xla.forward(q, k, v, rows, scale=cfg.scale)
  tq = q.shape[2]
  bq, bk = _TILES[cfg.impl]
  qp, kp, vp, rp = _padded(cfg, q, k, v, rows)
  interpret = pallas_support.interpret_arg(cfg.impl)
  if cfg.impl in dispatch.TPU_BODY_IMPLS:
    blocks = sparse_indices.touched_blocks(rp, bq, bk, kp.shape[2] // bk)
    o, lse = block_sparse_tpu.forward(
        qp, kp, vp, blocks, None, None, rp, extras_lib.Extras(), block_q=bq,
        block_k=bk, causal=False, scale=cfg.scale, interpret=interpret)
  else:
    o, lse = row_sparse_gpu.forward(qp, kp, vp, rp, block_q=bq,
                                    scale=cfg.scale, interpret=interpret)
  return o[:, :, :tq], lse[:, :, :tq]


def _backward(cfg, q, k, v, rows, lse, do, delta):
  if cfg.impl == dispatch.XLA:
    return row_sparse_xla.backward(q, k, v, rows, lse, do, delta,
                                   scale=cfg.scale)
  tq, tk = q.shape[2], k.shape[2]
  bq, bk = _TILES[cfg.impl]
  qp, kp, vp, rp = _padded(cfg, q, k, v, rows)
  lse_p = _pad_axis2(lse, bq, jnp.inf)
  do_p, delta_p = _pad_axis2(do, bq, 0), _pad_axis2(delta, bq, 0)
  interpret = pallas_support.interpret_arg(cfg.impl)
  if cfg.impl in dispatch.TPU_BODY_IMPLS:
    blocks = sparse_indices.touched_blocks(rp, bq, bk, kp.shape[2] // bk)
    dq, dk, dv, _, _ = block_sparse_tpu.backward(
        qp, kp, vp, blocks, None, None, rp, extras_lib.Extras(), lse_p, do_p,
        delta_p, block_q=bq, block_k=bk, causal=False, scale=cfg.scale,
        interpret=interpret)
  else:
    dq, dk, dv = row_sparse_gpu.backward(
        qp, kp, vp, rp, lse_p, do_p, delta_p, block_q=bq, block_k=bk,
        chunk=_GPU_PAIR_CHUNK, scale=cfg.scale, interpret=interpret)
    dk, dv = gpu_support.sum_groups(dk, kp), gpu_support.sum_groups(dv, vp)
  return dq[:, :, :tq], dk[:, :, :tk], dv[:, :, :tk]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _row_sparse(cfg, q, k, v, rows):
  o, lse = _forward(cfg, q, k, v, rows)
  return o, attention_math.public_lse(lse)


def _row_sparse_fwd(cfg, q, k, v, rows):
  o, lse = _forward(cfg, q, k, v, rows)
  return (o, attention_math.public_lse(lse)), (q, k, v, rows, o, lse)


def _row_sparse_bwd(cfg, res, cotangents):
  q, k, v, rows, o, lse = res
  do, dlse = cotangents
  delta = attention_math.backward_delta(o, do, lse, dlse)
  dq, dk, dv = _backward(cfg, q, k, v, rows, lse, do.astype(q.dtype), delta)
  return dq, dk, dv, None


_row_sparse.defvjp(_row_sparse_fwd, _row_sparse_bwd)


def row_sparse_attention_reference(q, k, v, key_indices, *, key_valid=None,
                                   q_segment_ids=None, kv_segment_ids=None,
                                   scale=None, return_lse=False):
  """Dense-mask reference: O(Tq * Tk) memory, written for clarity; f32 math (GQA kv heads are
  repeated here, never in the fast impls)."""
  scale = _validate(q, k, v, key_indices, key_valid, scale, q_segment_ids,
                    kv_segment_ids)
  b, h, tq, _ = q.shape
  tk = k.shape[2]
  group = h // k.shape[1]
  k, v = jnp.repeat(k, group, axis=1), jnp.repeat(v, group, axis=1)
  ok = (key_indices >= 0) & (key_indices < tk)
  if key_valid is not None:
    ok = ok & key_valid
  # Out-of-bounds targets are dropped by the scatter.
  target = jnp.where(ok, key_indices, tk)
  bi = jnp.arange(b)[:, None, None, None]
  hi = jnp.arange(h)[None, :, None, None]
  qi = jnp.arange(tq)[None, None, :, None]
  mask = jnp.zeros((b, h, tq, tk), bool).at[bi, hi, qi, target].set(
      True, mode="drop")
  if q_segment_ids is not None:
    mask = mask & (q_segment_ids[:, None, :, None] ==
                   kv_segment_ids[:, None, None, :])
  return attention_math.dense_masked_attention(q, k, v, mask, scale, return_lse)
