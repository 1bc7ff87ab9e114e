"""Grouped matmul (rows sorted by group, one weight matrix per group) at ~the active FLOPs on CPU.

`jax.lax.ragged_dot` is the grouped matmul of 'dropless' MoE dispatch (common/layers/moe.py), and
TPU and GPU lower it to grouped kernels. On CPU (jax 0.10) it lowers to a masked dense product:
every row against every group's weights, G times the useful FLOPs (XLA's cost analysis agrees).
`impl='tiled'` is a CPU-friendly formulation in plain jnp: each group's rows are padded to a
multiple of `tile`, so every tile of the padded rows belongs to one group, and one batched einsum
multiplies each tile by its group's matrix. The FLOPs are those of the padded rows, a static
P = round_up(R + G (tile - 1), tile) >= R rows, so the overhead over the active FLOPs is at most
G tile / R; the bytes add one [P / tile, K, N] copy of the per-tile weights. Gradients are plain
autodiff: the row gathers and the weight gather transpose to scatter-adds (the weight one adds
P / tile windows of K*N, 1 / (2 tile) of the einsum's FLOPs).

Not chosen: selecting the weights by a one-hot matmul instead of the gather (its transpose is a
matmul, not a scatter-add) costs more FLOPs and no fewer bytes (forward at 4096 x 256 x 128, 8
groups, tile 64: 1.27x the active FLOPs against 1.13x, 40.6 MB both); a `lax.map` over the
tiles reads each tile's weights in place but runs P / tile small matmuls one after another, and
XLA's cost analysis counts a loop body once, so nothing here could show it cheaper.

Rows past sum(group_sizes) belong to no group ('other' rows: under shard_map, the rows routed to
another shard's experts) and give zero output rows in every impl.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

IMPLS = ("auto", "ragged_dot", "tiled")
MIN_TILE, MAX_TILE = 8, 256


def grouped_matmul(x: jax.Array, w: jax.Array, group_sizes: jax.Array, *, impl: str = "auto",
                   tile: int | None = None) -> jax.Array:
  """out[r] = x[r] @ w[g(r)] for the rows r of group g (groups consecutive, in order); [R, N].

  x [R, K] sorted by group; w [G, K, N]; group_sizes int [G] with sum <= R (the rows after the
  sum give zeros). impl: 'ragged_dot' (`jax.lax.ragged_dot`: TPU / GPU kernels), 'tiled' (the
  padded batched einsum of the module docstring: CPU), 'auto' ('tiled' when
  `jax.default_backend()` is 'cpu' at trace time, else 'ragged_dot'; a program placed on a
  non-default backend should name its impl: both are correct everywhere, only the cost differs).
  tile: rows per tile for 'tiled'; None picks `default_tile(R, G)`.
  """
  if impl not in IMPLS:
    raise ValueError(f"grouped_matmul impl={impl!r}; expected one of {IMPLS}.")
  if x.ndim != 2 or w.ndim != 3 or group_sizes.shape != (w.shape[0],) or x.shape[1] != w.shape[1]:
    raise ValueError(f"grouped_matmul needs x [R, K], w [G, K, N], group_sizes [G]; got x "
                     f"{x.shape}, w {w.shape}, group_sizes {group_sizes.shape}.")
  if tile is not None and not (isinstance(tile, int) and tile >= 1):
    raise ValueError(f"grouped_matmul tile={tile!r} must be a positive int.")
  if impl == "auto":
    impl = "tiled" if jax.default_backend() == "cpu" else "ragged_dot"
  group_sizes = group_sizes.astype(jnp.int32)
  if impl == "ragged_dot":
    out = jax.lax.ragged_dot(x, w, group_sizes)
    # Not every backend defines the rows past the last group: zero them.
    inside = jnp.arange(x.shape[0]) < jnp.sum(group_sizes)
    return jnp.where(inside[:, None], out, 0)
  return _tiled(x, w, group_sizes, tile or default_tile(x.shape[0], w.shape[0]))


def default_tile(rows: int, groups: int) -> int:
  """The power of two nearest rows / (8 groups), within [MIN_TILE, MAX_TILE].

  Padding adds up to groups * (tile - 1) rows of FLOPs (1/8 of the rows at this tile) and the
  per-tile weight copy holds rows / tile + groups matrices (9 per group). XLA's cost analysis of
  the MoE-X layer ('dropless', benchmarks/experts.py's shapes: 4096 rows, 8 groups, K = 256,
  N = 128; forward / forward+backward): tile 32: 0.60 / 1.80 GFLOP, 125 / 449 MB; 64: 0.63 /
  1.90 GFLOP, 93 / 371 MB; 128: 0.70 / 2.10 GFLOP, 80 / 340 MB; 256: 0.83 / 2.50 GFLOP, 78 /
  341 MB. 64 over 128 trades 10% of FLOPs for 9-15% of bytes, most of them copies of a 1 MB
  weight that is likely cache-resident; below 64 the copies grow faster than the FLOPs shrink.
  """
  tile = 1 << max(0, round(math.log2(max(rows / (8 * groups), 1.0))))
  return min(max(tile, MIN_TILE), MAX_TILE)


def padded_rows(rows: int, groups: int, tile: int) -> int:
  """The static row count of the tiled layout: each nonempty group wastes < tile rows."""
  waste = min(groups, rows) * (tile - 1)
  return -(-(rows + waste) // tile) * tile


def _tiled(x, w, group_sizes, tile: int):
  r, k = x.shape
  g, _, n = w.shape
  p = padded_rows(r, g, tile)
  ends = jnp.cumsum(group_sizes)
  starts = ends - group_sizes
  padded = (group_sizes + tile - 1) // tile * tile
  pends = jnp.cumsum(padded)
  pstarts = pends - padded
  # Padded slot -> (group, source row).
  slot = jnp.arange(p, dtype=jnp.int32)
  slot_group = jnp.minimum(_group_of(pends, slot), g - 1)
  rank = slot - pstarts[slot_group]
  filled = (slot < pends[-1]) & (rank < group_sizes[slot_group])
  src = jnp.where(filled, starts[slot_group] + rank, 0)
  xp = jnp.where(filled[:, None], x[src], 0).reshape(p // tile, tile, k)
  # Every tile lies inside one group's padded range; the tiles past the last one are all zero
  # rows, so any group's matrix gives them zero output (and zero weight gradient).
  tile_group = slot_group[::tile]
  yp = jnp.einsum("tbk,tkn->tbn", xp, w[tile_group]).reshape(p, n)
  # Row -> padded slot; rows past the groups read nothing.
  row = jnp.arange(r, dtype=jnp.int32)
  row_group = jnp.minimum(_group_of(ends, row), g - 1)
  inside = row < ends[-1]
  dest = jnp.where(inside, pstarts[row_group] + row - starts[row_group], 0)
  return jnp.where(inside[:, None], yp[dest], 0)


def _group_of(ends, i):
  """The group of each position i, given the groups' (cumulative) ends: G for i >= ends[-1]."""
  return jnp.searchsorted(ends, i, side="right", method="compare_all").astype(jnp.int32)
