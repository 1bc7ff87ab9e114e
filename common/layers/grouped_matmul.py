"""Grouped matmul (rows sorted by group, one weight matrix per group), fast on CPU too.

`jax.lax.ragged_dot` is the grouped matmul of 'dropless' MoE dispatch (common/layers/moe.py), and
TPU and GPU lower it to grouped kernels. On CPU (jax 0.10) it lowers to a masked dense product:
every row against every group's weights, G times the useful FLOPs (XLA's cost analysis agrees).

`impl='windowed'` is the CPU formulation. Each group's rows are cut into windows of `tile`
consecutive rows (the last window of a group runs into the next group's rows, which are masked),
and a `lax.scan` over a static bound of W = R // tile + G windows runs one plain [tile, K] x [K, N]
matmul per window, reading the rows as a slice of x and the weights in place (w[g], no copy);
the windows past the last group's (W is a bound: with whole-window groups G of them are unused)
are skipped with `lax.cond`. Each window writes its rows into one [R + tile, N] buffer that the
scan carries (in place); windows run in row order, so the rows a group's last window writes past
the group's end are written again by the next group's first window. (Stacking the windows'
outputs as [W, tile, N] and gathering each row's back cost a fill, a copy and a gather of that
size.)
The backward is a `custom_vjp` of the same shape: dx is the windowed product of the cotangent
with w[g]^T (a dot contracting w's last axis, so w is never transposed in memory), and dw a
second scan that adds each window's x^T dy into its group's matrix.

Why a loop: XLA:CPU runs a plain 2-D dot as one Eigen GEMM near the machine's peak, but a
batched dot over many small tiles far below it. Measured at benchmarks/experts.py's shapes
(4096 rows, K = 256, N = 128, 8 groups, f32, 2 cores, idle, median of 3 x 20; /tmp prototype,
2026-12-04): one plain [4096, 256] x [256, 128] matmul of the same FLOPs 1.5 ms forward /
6.9 ms forward+backward; windowed, tile 256: 3.4 / 13.3 ms; the padded batched einsum this
replaced (each group padded to 64-row tiles, `w[tile_group]` copies): 6.9 / 18.4 ms; tile 128 /
512 windows: 4.7 / 13.5 and 4.3 / 14.6 ms (all before the unused windows were skipped and the
carried output buffer). With both, at 8 groups of ~470 rows: 2.0-2.9 ms forward against a plain
matmul's 0.8-1.0 ms, and each window's [256, 256] x [256, 128] product runs at about two thirds
of the plain GEMM's rate. Fully unrolling the scan measured no faster, and a batched dot over
256-row padded tiles 2.3 against 2.5 ms forward, too little for a second formulation (/tmp
prototypes, same day). The
FLOPs are those of the windows in use, at most R + G * tile rows (1.5x R at the shapes above).
XLA's cost analysis counts a loop body once, so its FLOP count of this impl is not the executed
one.

Rows past sum(group_sizes) belong to no group ('other' rows: under shard_map, the rows routed to
another shard's experts) and give zero output rows (and zero gradients) in every impl.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from common.kernels import pallas_support
from common.layers import prefix_sums

IMPLS = ("auto", "ragged_dot", "windowed")
MIN_TILE, MAX_TILE = 8, 512


def grouped_matmul(x: jax.Array, w: jax.Array, group_sizes: jax.Array, *, impl: str = "auto",
                   tile: int | None = None) -> jax.Array:
  """out[r] = x[r] @ w[g(r)] for the rows r of group g (groups consecutive, in order); [R, N].

  x [R, K] sorted by group; w [G, K, N]; group_sizes int [G] with sum <= R (the rows after the
  sum give zeros). impl: 'ragged_dot' (`jax.lax.ragged_dot`: TPU / GPU kernels), 'windowed' (the
  scan over row windows of the module docstring: CPU), 'auto' ('windowed' when
  `jax.default_backend()` is 'cpu' at trace time, else 'ragged_dot'; a program placed on a
  non-default backend should name its impl: both are correct everywhere, only the cost differs).
  tile: rows per window for 'windowed'; None picks `default_tile(R, G)`.
  """
  if impl not in IMPLS:
    raise ValueError(f"grouped_matmul impl={impl!r}; expected one of {IMPLS}.")
  if x.ndim != 2 or w.ndim != 3 or group_sizes.shape != (w.shape[0],) or x.shape[1] != w.shape[1]:
    raise ValueError(f"grouped_matmul needs x [R, K], w [G, K, N], group_sizes [G]; got x "
                     f"{x.shape}, w {w.shape}, group_sizes {group_sizes.shape}.")
  if tile is not None and not (isinstance(tile, int) and tile >= 1):
    raise ValueError(f"grouped_matmul tile={tile!r} must be a positive int.")
  if impl == "auto":
    impl = "windowed" if jax.default_backend() == "cpu" else "ragged_dot"
  group_sizes = group_sizes.astype(jnp.int32)
  if impl == "ragged_dot":
    out = jax.lax.ragged_dot(x, w, group_sizes)
    # Not every backend defines the rows past the last group: zero them.
    inside = jnp.arange(x.shape[0]) < jnp.sum(group_sizes)
    return jnp.where(inside[:, None], out, 0)
  # Inside shard_map: one varying type for both operands, so that the custom_vjp's gradients
  # have their types (the transpose of this mark is the psum over the axes w is replicated on).
  x, w = pallas_support.match_varying(x, w)
  return _windowed(x, w, group_sizes, tile or default_tile(x.shape[0], w.shape[0]))


def default_tile(rows: int, groups: int) -> int:
  """The power of two nearest rows / (2 groups), within [MIN_TILE, MAX_TILE].

  Half a mean group per window: W = rows / tile + groups windows, so this tile computes at most
  1.5x the rows, in matmuls large enough for the CPU GEMM (module docstring: 256 at 4096 rows
  and 8 groups beat 128 and 512).
  """
  tile = 1 << max(0, round(math.log2(max(rows / (2 * groups), 1.0))))
  return min(max(tile, MIN_TILE), MAX_TILE)


def num_windows(rows: int, groups: int, tile: int) -> int:
  """The static window count: sum_g ceil(size_g / tile) <= rows // tile + groups."""
  return rows // tile + min(groups, rows)


class _Windows(NamedTuple):
  start: jax.Array    # [W] first row of each window (0 for the unused windows)
  group: jax.Array    # [W] its group
  stop: jax.Array     # [W] its group's end: rows at or past it are masked (0: unused window)
  inside: jax.Array   # [R] whether the row belongs to a group


def _windows(group_sizes, rows: int, tile: int) -> _Windows:
  g = group_sizes.shape[0]
  ends = prefix_sums.prefix_sum(group_sizes, 0)
  starts = ends - group_sizes
  counts = (group_sizes + tile - 1) // tile
  wends = prefix_sums.prefix_sum(counts, 0)
  wstarts = wends - counts
  win = jnp.arange(num_windows(rows, g, tile), dtype=jnp.int32)
  group = jnp.minimum(_group_of(wends, win), g - 1)
  used = win < wends[-1]
  return _Windows(
      start=jnp.where(used, starts[group] + (win - wstarts[group]) * tile, 0), group=group,
      stop=jnp.where(used, ends[group], 0), inside=jnp.arange(rows) < ends[-1])


def _pad_rows(x, tile: int):
  """x with `tile` zero rows appended, so that every window's slice stays inside it."""
  return jnp.concatenate([x, jnp.zeros((tile,) + x.shape[1:], x.dtype)])


def _windowed_product(x, w, win: _Windows, tile: int, *, transpose_w: bool = False):
  """x @ w[g] per window (x @ w[g]^T with transpose_w: the backward's dx reads w in place)."""
  xp = _pad_rows(x, tile)
  contract = (((1,), (1 if transpose_w else 0,)), ((), ()))   # on w[g]: [K, N]
  out_dim = w.shape[1 if transpose_w else 2]

  def window(out, a):
    start, group, stop = a

    def write(out):
      y = lax.dot_general(lax.dynamic_slice_in_dim(xp, start, tile), w[group], contract)
      # Windows run in row order, so the rows this window writes past its group's end are
      # written again by the next group's first window (or are 'other' rows, masked below).
      return lax.dynamic_update_slice_in_dim(out, y.astype(out.dtype), start, 0)

    # The static bound W exceeds the windows in use (by G when the groups are whole windows):
    # skip the product there rather than compute and discard it.
    return lax.cond(stop > 0, write, lambda out: out, out), None

  # The windows write into one carried [R + tile, N] buffer in place: stacking per-window
  # outputs and gathering each row back cost XLA:CPU a [W, tile, N] fill, a copy and a gather.
  out = jnp.zeros((x.shape[0] + tile, out_dim), jnp.result_type(xp, w))
  out, _ = lax.scan(window, pallas_support.varying_like(out, xp, w),
                    (win.start, win.group, win.stop))
  return jnp.where(win.inside[:, None], out[:x.shape[0]], 0)


def _windowed_weight_grad(x, dy, win: _Windows, groups: int, tile: int):
  xp, dyp = _pad_rows(x, tile), _pad_rows(dy, tile)
  offsets = jnp.arange(tile)

  def add(dw, start, group, stop):
    rows = lax.dynamic_slice_in_dim(xp, start, tile)
    rows = jnp.where((start + offsets < stop)[:, None], rows, 0)   # the next group's rows
    upd = jnp.matmul(rows.T, lax.dynamic_slice_in_dim(dyp, start, tile),
                     preferred_element_type=jnp.float32)
    return lax.dynamic_update_index_in_dim(dw, dw[group] + upd, group, 0)

  def window(dw, a):
    start, group, stop = a
    return lax.cond(stop > 0, add, lambda dw, *_: dw, dw, start, group, stop), None

  # f32 accumulator: a group's windows add up in it (bf16 sums would round at every window).
  dw0 = jnp.zeros((groups, x.shape[1], dy.shape[1]), jnp.float32)
  # Under shard_map the updates vary over x's and dy's manual axes: so must the carry.
  dw0 = pallas_support.varying_like(dw0, x, dy)
  dw, _ = lax.scan(window, dw0, (win.start, win.group, win.stop))
  return dw


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _windowed(x, w, group_sizes, tile: int):
  return _windowed_product(x, w, _windows(group_sizes, x.shape[0], tile), tile)


def _windowed_fwd(x, w, group_sizes, tile):
  win = _windows(group_sizes, x.shape[0], tile)
  return _windowed_product(x, w, win, tile), (x, w, win, group_sizes)


def _windowed_bwd(tile, res, dy):
  x, w, win, group_sizes = res
  dx = _windowed_product(dy, w, win, tile, transpose_w=True)
  dw = _windowed_weight_grad(x, dy, win, w.shape[0], tile)
  return dx.astype(x.dtype), dw.astype(w.dtype), np.zeros(group_sizes.shape, jax.dtypes.float0)


_windowed.defvjp(_windowed_fwd, _windowed_bwd)


def _group_of(ends, i):
  """The group of each position i, given the groups' (cumulative) ends: G for i >= ends[-1]."""
  return jnp.searchsorted(ends, i, side="right", method="compare_all").astype(jnp.int32)
