"""Block-sparse attention with data-dependent block lists (Routing Transformer, BiFormer).

    o = block_sparse_attention(q, k, v, kv_block_indices, block_q=64, block_k=64)

Shapes: q [B, H, Tq, D], k and v [B, H_kv, Tk, D] with H % H_kv == 0,
kv_block_indices int32 [B, H, Tq // block_q, n_sel] (per *query* head). Query
block i attends to the keys of the kv blocks listed in kv_block_indices[b, h, i]
(key block j = keys [j * block_k, (j + 1) * block_k)). The lists are data
(computed under jit, e.g. from routing), not static masks.

Semantics:
* Each list is a *set*: -1 entries, out-of-range values and duplicates are
  ignored (values cannot be checked under jit, so they are dropped, not
  raised on).
* causal=True also requires q_position >= kv_position. Positions default to
  arange(T); pass int32 [B, H, T] q_positions / kv_positions for permuted
  sequences (e.g. tokens sorted by cluster). They are read when causal=True or
  a relative table is given, and ignored otherwise.
* Segment ids (as JAX's splash attention): optional int32 q_segment_ids
  [B, Tq] and kv_segment_ids [B, Tk], both or neither; a query attends only
  to keys with the same id (packed sequences), on top of the block lists and
  the causal rule.
* GQA / MQA: k and v may have H_kv heads; query head h reads kv head
  h // (H // H_kv). k and v are never repeated in memory: the XLA path
  gathers kv blocks by kv head, the Pallas bodies map the grid's query head
  to its kv head in the k/v BlockSpec index maps. dk/dv sum over the
  H // H_kv query heads of a group: the XLA path scatter-adds into
  [B, H_kv, Tk, D] directly; the Pallas dk/dv bodies write per-query-head
  gradients [B, H, Tk, D] (f32) that are summed over groups afterwards, so the
  *backward* of a Pallas impl with H_kv < H materialises one [B, H, Tk, D]
  array per gradient.
* Shaw relative positions (the Routing Transformer's official text setting;
  relative_positions.py): rel_keys and/or rel_values, float [R, D] (one table
  for every head) or [H, R, D] (per query head), R = 2 * max_distance + 1.
  With r(i, j) = clip(kv_pos[j] - q_pos[i], -M, M) + M (key minus query, as
  T2T), the scores are scale * q_i . (k_j + rel_keys[r]) and the output is
  sum_j p_ij (v_j + rel_values[r]). Positions as above (default arange). The
  tables get gradients (f32 accumulation, returned in their dtype); no
  [Tq, Tk] bias is ever built. Lists given as a numpy array (known at trace
  time) that list kv blocks i - S + 1 .. i for every query block i (a causal
  local window; S = 1 is block-diagonal), on default positions with
  block_q == block_k, let the XLA path compute these terms for the whole
  window at once (relative_positions.Window), about 2x faster on CPU.
* A query with no admissible key returns 0 (and gradients 0), never NaN.
* return_lse=True also returns the float32 log-sum-exp [B, H, Tq] of the
  scaled admissible scores; a row with no admissible key has lse = -inf
  (see attention_math for why).
* scale defaults to D ** -0.5; the output has q's dtype. f32 and bf16 inputs
  are supported; softmax statistics and accumulators are always f32.

impl (see dispatch.py): "auto" runs the Pallas TPU or GPU body on those
backends (falling back to the XLA path for shapes outside the kernel's tiling
rules) and the gather-based XLA path elsewhere. Every impl takes every
feature above, forward and backward.

Differentiation: a jax.custom_vjp in flash-attention-2 style for every impl
but "reference" (which is plain autodiff). The forward saves o and the lse;
the backward recomputes probabilities from them: dq (and the relative tables'
gradients) by a pass over query blocks, dk/dv by a pass over kv blocks driven
by the transposed block lists (`sparse_indices.pairs_by_kv_block`: (q block,
kv block) pairs sorted by kv block, length nQ * n_sel, so no padded maximum).
Indices, positions and segment ids get no gradient. The GPU body adds table
gradient rows with atomics (f32; summation order, hence the last bits, may
vary between runs); the TPU body and the XLA path are deterministic.

Sharding: the op is independent per batch element and head, so under
shard_map use P('data', 'model', None, None) for q, k, v and
kv_block_indices, P('data', 'model', None) for positions and P('data', None)
for segment ids; no collectives are needed. With GQA shard the heads so that
each shard holds whole groups (H and H_kv both divisible by the 'model' axis
size: a query head's kv head must live on its shard). A shared [R, D] table is
replicated and its gradient summed over shards by shard_map's transpose
(psum); a per-head [H, R, D] table is sharded like the heads. Inside
shard_map(check_vma=True) the Pallas outputs are typed as varying like q; one
exception: Pallas' HLO interpreter (impl="interpret") trips JAX's vma check,
so tests run that case with check_vma=False (the TPU interpreter and the XLA
path pass with check_vma=True).

It also works under jit and vmap: the TPU bodies fold vmapped axes into the
batch axis (custom_vmap; one launch with a bigger grid instead of Pallas'
serial fallback for batched scalar-prefetch operands), the GPU bodies use
Pallas' own vmap rule (an extra grid axis). Second-order derivatives are not
supported.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from common.kernels import attention_math
from common.kernels import block_sparse_gpu
from common.kernels import block_sparse_tpu
from common.kernels import block_sparse_xla
from common.kernels import dispatch
from common.kernels import extras as extras_lib
from common.kernels import pallas_support
from common.kernels import relative_positions
from common.kernels import sparse_indices
from common.kernels import validation


@dataclasses.dataclass(frozen=True)
class _Config:
  block_q: int
  block_k: int
  causal: bool
  scale: float
  impl: str  # resolved, never "auto"
  # Positions are the defaults (arange), so inside a tile the Shaw bucket depends only on the
  # diagonal: the XLA path then skews instead of gathering and scattering per element.
  default_positions: bool = False
  # A causal local window on the XLA path (sparse_indices.static_band: numpy lists of the
  # kv blocks i - S + 1 .. i, blocks of one size, default positions, Shaw tables): S, else 0.
  window: int = 0


def _validate(q, k, v, kv_block_indices, block_q, block_k, q_positions,
              kv_positions, causal, scale, q_segment_ids, kv_segment_ids,
              rel_keys, rel_values):
  """Checks every argument; returns (scale, max_distance or None)."""
  validation.check_qkv(q, k, v)
  b, h, tq, d = q.shape
  tk = k.shape[2]
  validation.check_block("block_q", block_q, tq, "Tq")
  validation.check_block("block_k", block_k, tk, "Tk")
  validation.check_int_array("kv_block_indices", kv_block_indices, ndim=4)
  want = (b, h, tq // block_q)
  if tuple(kv_block_indices.shape[:3]) != want or kv_block_indices.shape[3] < 1:
    raise ValueError(
        f"kv_block_indices.shape={tuple(kv_block_indices.shape)} must be "
        f"{want + ('n_sel',)} = (B, H, Tq // block_q, n_sel) with n_sel >= 1.")
  validation.check_segment_ids(q_segment_ids, kv_segment_ids, batch=b, tq=tq,
                               tk=tk)
  max_distance = validation.check_rel_tables(rel_keys, rel_values, heads=h,
                                             head_dim=d)
  if causal or max_distance is not None:
    for name, pos, t in (("q_positions", q_positions, tq),
                         ("kv_positions", kv_positions, tk)):
      if pos is not None:
        validation.check_int_array(name, pos, shape=(b, h, t))
  return validation.check_scale(scale, d), max_distance


def _gpu_fits(q, block_q, block_k):
  return validation.triton_fits(q, block_q, block_k)


def _tpu_fits(q, k, block_q, block_k, lane_tiles):
  """lane_tiles: the body loads [1, block_k] position / segment tiles (lanes)."""
  lane_ok = block_k % 128 == 0 or block_k == k.shape[2] or not lane_tiles
  return block_q % 8 == 0 and block_k % 8 == 0 and lane_ok


def block_sparse_attention(q, k, v, kv_block_indices, *, block_q: int,
                           block_k: int, q_positions=None, kv_positions=None,
                           causal: bool = False, q_segment_ids=None,
                           kv_segment_ids=None, rel_keys=None,
                           rel_values=None, scale=None,
                           return_lse: bool = False, impl: str = "auto"):
  """Attention of each query block to its listed key/value blocks.

  Args:
    q: [B, H, Tq, D] queries (f32 or bf16).
    k: [B, H_kv, Tk, D] keys, same dtype; H % H_kv == 0 (GQA/MQA).
    v: [B, H_kv, Tk, D] values, same dtype.
    kv_block_indices: int32 [B, H, Tq // block_q, n_sel]; -1 = empty slot.
    block_q: query block size; divides Tq.
    block_k: key/value block size; divides Tk.
    q_positions: optional int32 [B, H, Tq] (causal / relative; default arange).
    kv_positions: optional int32 [B, H, Tk] (causal / relative; default arange).
    causal: also mask keys whose position exceeds the query's.
    q_segment_ids: optional int32 [B, Tq]; with kv_segment_ids, a query sees
      only keys of its segment.
    kv_segment_ids: optional int32 [B, Tk].
    rel_keys: optional Shaw key table, float [R, D] or [H, R, D], R odd.
    rel_values: optional Shaw value table, same shapes (same R as rel_keys).
    scale: score scale; default D ** -0.5 (applies to q . rel_keys too).
    return_lse: also return the f32 log-sum-exp [B, H, Tq] (-inf: empty row).
    impl: "auto" | "xla" | "reference" | "pallas_tpu" | "pallas_gpu" |
      "interpret" (= "interpret_gpu") | "interpret_tpu".

  Returns:
    o [B, H, Tq, D] in q.dtype, or (o, lse) if return_lse.

  Raises:
    ValueError: on bad shapes, dtypes, block sizes, tables or impl.
  """
  dispatch.validate_impl(impl)
  # numpy inputs would reach the XLA path's traced gathers as host arrays and fail there.
  q, k, v = jnp.asarray(q), jnp.asarray(k), jnp.asarray(v)
  scale, max_distance = _validate(
      q, k, v, kv_block_indices, block_q, block_k, q_positions, kv_positions,
      causal, scale, q_segment_ids, kv_segment_ids, rel_keys, rel_values)
  relative = max_distance is not None
  lane_tiles = causal or relative or q_segment_ids is not None
  # 'auto' keeps two cases on XLA that measured slower in the Triton body on an H200
  # (benchmarks/RESULTS.md "Device check"); 'pallas_gpu' still runs them:
  # - Shaw tables: the body folds buckets in one select at a time, the XLA path uses
  #   per-diagonal matmuls (3.05 vs 2.57 ms forward at 4k);
  # - tiles cut below 64 rows for their bytes (f32 at D = 128: 32-row tiles, 10.3 vs 4.36 ms
  #   forward+backward at 4k, though 0.53 vs 1.63 ms forward).
  fast_tiles = block_sparse_gpu.tile_rows(block_q, q.shape[-1], q.dtype) >= min(block_q, 64)
  resolved = dispatch.resolve_impl(
      impl, kernel_fits_tpu=_tpu_fits(q, k, block_q, block_k, lane_tiles),
      kernel_fits_gpu=_gpu_fits(q, block_q, block_k) and not relative and fast_tiles)
  if resolved == dispatch.PALLAS_GPU and not _gpu_fits(q, block_q, block_k):
    raise ValueError(
        f"impl='pallas_gpu' needs block_q={block_q}, block_k={block_k} and "
        f"D={q.shape[-1]} to be powers of two >= 16 and dtype in (float16, "
        f"bfloat16, float32); use impl='auto' or 'xla' for other shapes.")
  if resolved == dispatch.PALLAS_TPU and not _tpu_fits(q, k, block_q, block_k,
                                                        lane_tiles):
    raise ValueError(
        f"impl='pallas_tpu' needs block_q={block_q} a multiple of 8 and "
        f"block_k={block_k} a multiple of 128 (of 8 without causal, segment "
        f"ids and relative tables) or equal to Tk; use impl='auto' or 'xla' "
        f"for other shapes.")
  if resolved == dispatch.REFERENCE:
    return block_sparse_attention_reference(
        q, k, v, kv_block_indices, block_q=block_q, block_k=block_k,
        q_positions=q_positions, kv_positions=kv_positions, causal=causal,
        q_segment_ids=q_segment_ids, kv_segment_ids=kv_segment_ids,
        rel_keys=rel_keys, rel_values=rel_values, scale=scale,
        return_lse=return_lse)
  q_pos, kv_pos = _positions(q, k, q_positions, kv_positions,
                             causal or relative)
  default_positions = q_positions is None and kv_positions is None
  window = 0
  if (resolved == dispatch.XLA and relative and causal and default_positions
      and block_q == block_k):
    band = sparse_indices.static_band(kv_block_indices, k.shape[2] // block_k)
    if band is not None and band == sparse_indices.causal_window(len(band)):
      window = len(band)
  cfg = _Config(block_q=block_q, block_k=block_k, causal=bool(causal),
                scale=scale, impl=resolved, default_positions=default_positions,
                window=window)
  ext = extras_lib.Extras(q_segment_ids, kv_segment_ids,
                          extras_lib.table(rel_keys, like=(q, k, v)),
                          extras_lib.table(rel_values, like=(q, k, v)))
  o, lse = _block_sparse(cfg, q, k, v, kv_block_indices, q_pos, kv_pos, ext)
  return (o, lse) if return_lse else o


def _positions(q, k, q_positions, kv_positions, needed):
  if not needed:
    return None, None
  b, h, tq, _ = q.shape
  tk = k.shape[2]
  if q_positions is None:
    q_positions = jnp.broadcast_to(jnp.arange(tq, dtype=jnp.int32), (b, h, tq))
  if kv_positions is None:
    kv_positions = jnp.broadcast_to(jnp.arange(tk, dtype=jnp.int32), (b, h, tk))
  return q_positions, kv_positions


def prepare_block_indices(kv_block_indices, q_pos, kv_pos, *, block_q, block_k,
                          num_kv_blocks, causal):
  """Compacts the lists (sets, valid first) and drops causally empty tiles."""
  idx = kv_block_indices
  if causal:
    idx = sparse_indices.prune_causal_blocks(
        sparse_indices.compact_unique(idx, num_kv_blocks), q_pos, kv_pos,
        block_q, block_k)
  return sparse_indices.compact_unique(idx, num_kv_blocks)


def _kw(cfg):
  return dict(block_q=cfg.block_q, block_k=cfg.block_k, causal=cfg.causal,
              scale=cfg.scale)


def _forward(cfg, q, k, v, idx, q_pos, kv_pos, ext):
  if cfg.impl == dispatch.XLA:
    return block_sparse_xla.forward(q, k, v, idx, q_pos, kv_pos, ext,
                                    diagonal=cfg.default_positions, window=cfg.window,
                                    **_kw(cfg))
  interpret = pallas_support.interpret_arg(cfg.impl)
  if cfg.impl in dispatch.TPU_BODY_IMPLS:
    return block_sparse_tpu.forward(q, k, v, idx, q_pos, kv_pos, None, ext,
                                    interpret=interpret, **_kw(cfg))
  return block_sparse_gpu.forward(q, k, v, idx, q_pos, kv_pos, ext,
                                  interpret=interpret, **_kw(cfg))


def _backward(cfg, q, k, v, idx, q_pos, kv_pos, ext, lse, do, delta):
  """(dq, dk, dv, d rel_keys, d rel_values); table gradients f32 [Ht, R, D] or None."""
  if cfg.impl == dispatch.XLA:
    return block_sparse_xla.backward(q, k, v, idx, q_pos, kv_pos, ext, lse, do,
                                     delta, diagonal=cfg.default_positions,
                                     window=cfg.window, **_kw(cfg))
  interpret = pallas_support.interpret_arg(cfg.impl)
  if cfg.impl in dispatch.TPU_BODY_IMPLS:
    return block_sparse_tpu.backward(q, k, v, idx, q_pos, kv_pos, None, ext,
                                     lse, do, delta, interpret=interpret,
                                     **_kw(cfg))
  return block_sparse_gpu.backward(q, k, v, idx, q_pos, kv_pos, ext, lse, do,
                                   delta, interpret=interpret, **_kw(cfg))


def _prepare(cfg, k, kv_block_indices, q_pos, kv_pos):
  if cfg.window:  # already sets; Window needs slot s to hold block i - S + 1 + s
    b, h, nq, _ = kv_block_indices.shape
    return sparse_indices.band_indices(sparse_indices.causal_window(cfg.window), b, h, nq,
                                       k.shape[2] // cfg.block_k)
  return prepare_block_indices(
      kv_block_indices, q_pos, kv_pos, block_q=cfg.block_q,
      block_k=cfg.block_k, num_kv_blocks=k.shape[2] // cfg.block_k,
      causal=cfg.causal)


# ext holds f32 [Ht, R, D] copies of the user's tables (extras.table); their cotangents flow
# back to the user's shapes and dtypes through that differentiable reshape and cast.
@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _block_sparse(cfg, q, k, v, kv_block_indices, q_pos, kv_pos, ext):
  idx = _prepare(cfg, k, kv_block_indices, q_pos, kv_pos)
  o, lse = _forward(cfg, q, k, v, idx, q_pos, kv_pos, ext)
  return o, attention_math.public_lse(lse)


def _block_sparse_fwd(cfg, q, k, v, kv_block_indices, q_pos, kv_pos, ext):
  idx = _prepare(cfg, k, kv_block_indices, q_pos, kv_pos)
  o, lse = _forward(cfg, q, k, v, idx, q_pos, kv_pos, ext)
  return ((o, attention_math.public_lse(lse)),
          (q, k, v, idx, q_pos, kv_pos, ext, o, lse))


def _block_sparse_bwd(cfg, res, cotangents):
  q, k, v, idx, q_pos, kv_pos, ext, o, lse = res
  do, dlse = cotangents
  delta = attention_math.backward_delta(o, do, lse, dlse)
  dq, dk, dv, drk, drv = _backward(cfg, q, k, v, idx, q_pos, kv_pos, ext, lse,
                                   do.astype(q.dtype), delta)
  d_ext = extras_lib.Extras(None, None, drk, drv)
  return dq, dk, dv, None, None, None, d_ext


_block_sparse.defvjp(_block_sparse_fwd, _block_sparse_bwd)


def block_sparse_attention_reference(q, k, v, kv_block_indices, *, block_q,
                                     block_k, q_positions=None,
                                     kv_positions=None, causal=False,
                                     q_segment_ids=None, kv_segment_ids=None,
                                     rel_keys=None, rel_values=None,
                                     scale=None, return_lse=False):
  """Dense-mask reference: O(Tq * Tk) memory, written for clarity; f32 math.

  GQA kv heads are repeated here (the fast impls never do), and the relative
  terms use a dense [B, H, Tq, Tk] bucket matrix.
  """
  scale, max_distance = _validate(
      q, k, v, kv_block_indices, block_q, block_k, q_positions, kv_positions,
      causal, scale, q_segment_ids, kv_segment_ids, rel_keys, rel_values)
  group = q.shape[1] // k.shape[1]
  k, v = jnp.repeat(k, group, axis=1), jnp.repeat(v, group, axis=1)
  nk = k.shape[2] // block_k
  listed = kv_block_indices[..., None] == jnp.arange(nk)  # [B,H,nQ,n_sel,nK]
  block_mask = jnp.any(listed, axis=-2)  # [B, H, nQ, nK]
  mask = jnp.repeat(jnp.repeat(block_mask, block_q, axis=2), block_k, axis=3)
  relative = max_distance is not None
  q_pos, kv_pos = _positions(q, k, q_positions, kv_positions,
                             causal or relative)
  if causal:
    mask = mask & (q_pos[..., :, None] >= kv_pos[..., None, :])
  if q_segment_ids is not None:
    mask = mask & (q_segment_ids[:, None, :, None] ==
                   kv_segment_ids[:, None, None, :])
  bucket = None
  if relative:
    bucket = relative_positions.buckets(q_pos[..., :, None],
                                        kv_pos[..., None, :], max_distance)
  return attention_math.dense_masked_attention(
      q, k, v, mask, scale, return_lse, bucket=bucket,
      rel_keys=extras_lib.table(rel_keys),
      rel_values=extras_lib.table(rel_values))
