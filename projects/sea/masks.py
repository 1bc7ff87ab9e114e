"""SEA's key selection: grouped top-k over the compressed estimate, then the nearest bin map.

Two steps of `PerlinAttention.forward` (attention.py, the `mask` and `interp` regions):

1. Grouped top-k across heads (`k_flatten_dim='causal_batch'`). For query i, the H*T_M cells
   of P_hat[n, :, i, :] (head-major) are ranked; the cells with rank < b_i are kept, with the
   per-row budget b_i = max(1, round(H * k * k_oversample * T_M / (i + 1))).
2. Nearest map back to key resolution (ops/kernels/resize_m_to_t.py, eval mode): key j <= i of
   query i reads compressed bin floor((j + 0.5) / (i + 1) * T_M - 1e-4); keys j > i are dropped.

Everything that depends only on (T, T_M, H, k) is computed here once per shape in NumPy fp32,
in the same operation order as torch, so the bin boundaries and budgets are bit-identical.
Because the bin map is monotone in j, each bin is a contiguous key range; the row-sparse form
(`row_sparse_key_indices`) expands the kept bins into sorted key indices without ever building
the [T, T] mask.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from common.layers import prefix_sums, topk

# resize_m_to_t.py: `floor(((mask_cs - 1) + 0.5) / token_length * T_M - 1e-4)`. The -1e-4
# moves keys that sit exactly on a bin boundary into the lower bin.
BIN_EPS = np.float32(1e-4)


def per_row_budget(seq_len: int, num_heads: int, k: int, predictor_length: int,
                   k_oversample: float = 1.0) -> np.ndarray:
  """Cells kept per query, summed over heads: float32 [T] (integer valued).

  Reproduces torch's fp32 arithmetic in attention.py (causal branch of 'causal_batch'):
  `H * (k * k_oversample * T_M / causal_token_length)`; a Python scalar divided by a tensor is
  `tensor.reciprocal() * scalar` in torch, then `torch.round` (half to even), then clamp_min 1.
  """
  token_length = np.arange(1, seq_len + 1, dtype=np.float32)
  per_token = (np.float32(1.0) / token_length) * np.float32(k * k_oversample * predictor_length)
  budget = np.round(per_token * np.float32(num_heads))
  return np.maximum(budget, np.float32(1.0)).astype(np.float32)


def key_bins(seq_len: int, predictor_length: int, rows: slice | None = None) -> np.ndarray:
  """Compressed bin of key j for query i: int32 [rows, T]; keys j > i get T_M (dropped).

  Reproduces resize_from_m_to_t in eval mode (no jitter) in fp32: the causal mask's cumsum is
  j + 1 for j <= i and the token length is i + 1.
  """
  rows = rows or slice(0, seq_len)
  i = np.arange(seq_len, dtype=np.float32)[rows, None]
  j = np.arange(seq_len, dtype=np.float32)[None, :]
  cs = np.minimum(j, i) + np.float32(1.0)
  idx = np.floor((cs - np.float32(1.0) + np.float32(0.5)) / (i + np.float32(1.0))
                 * np.float32(predictor_length) - BIN_EPS)
  idx = np.clip(idx.astype(np.int64) + np.where(j > i, predictor_length, 0), 0, predictor_length)
  return idx.astype(np.int32)


@dataclasses.dataclass(frozen=True)
class SelectionTables:
  """Static (shape-only) tables for one (T, T_M, H, k, k_oversample).

  Attributes:
    budget: float32 [T], cells kept per query summed over heads.
    bin_start: int32 [T, T_M], first key of each bin (only meaningful where bin_count > 0).
    bin_count: int32 [T, T_M], keys per bin (0 for bins no key maps to).
    max_keys: the most keys a single head can keep for any query (static row-sparse width).
    row_groups: ((start, stop, width), ...) consecutive query rows and the most keys all heads
      together can keep for any query among them: the static widths of the lists shared by a
      query's heads (`grouped_key_lists`). About H*k for long rows, where max_keys is also
      about H*k because one head may take the whole budget; up to 2x that near row
      sqrt(k*T_M), hence one width per group of rows (group edges at powers of two).
  """
  budget: np.ndarray
  bin_start: np.ndarray
  bin_count: np.ndarray
  max_keys: int
  row_groups: tuple[tuple[int, int, int], ...]


@functools.lru_cache(maxsize=32)
def selection_tables(seq_len: int, predictor_length: int, num_heads: int, k: int,
                     k_oversample: float = 1.0) -> SelectionTables:
  """Builds (and caches) the static tables for one shape."""
  budget = per_row_budget(seq_len, num_heads, k, predictor_length, k_oversample)
  bin_start = np.zeros((seq_len, predictor_length), np.int32)
  bin_count = np.zeros((seq_len, predictor_length), np.int32)
  max_keys = 1
  row_keys = np.zeros(seq_len, np.int64)
  block = 256  # rows per NumPy block: bounds the temporary [block, T] to a few MB
  targets = np.arange(predictor_length)
  for r0 in range(0, seq_len, block):
    bins = key_bins(seq_len, predictor_length, slice(r0, min(seq_len, r0 + block)))
    for r, row in enumerate(bins):
      i = r0 + r
      live = row[: i + 1]  # monotone non-decreasing
      left = np.searchsorted(live, targets, side="left")
      right = np.searchsorted(live, targets, side="right")
      bin_start[i] = left
      bin_count[i] = right - left
      by_size = np.sort(bin_count[i])[::-1]
      cells = min(int(budget[i]), predictor_length)  # one head holds at most T_M cells
      max_keys = max(max_keys, int(by_size[:cells].sum()))
      # All heads: the budget's cells on the largest bins, each bin present once per head.
      row_keys[i] = np.repeat(by_size, num_heads)[:int(budget[i])].sum()
  edges = [0] + [2**p for p in range(6, 31) if 2**p < seq_len] + [seq_len]
  groups = tuple((a, b, max(1, int(row_keys[a:b].max()))) for a, b in zip(edges, edges[1:]))
  return SelectionTables(budget, bin_start, bin_count, min(max_keys, seq_len), groups)


def grouped_topk_keep(p_hat: jax.Array, tables: SelectionTables) -> jax.Array:
  """Kept compressed cells: bool [N, H, T, T_M] from P_hat [N, H, T, T_M].

  The rank is taken over each query's H*T_M cells (head-major, as `transpose(1, 2).reshape`),
  and the cells of rank < budget are kept; exact ties go to the lower flat index (lax.top_k's
  rule; torch's unstable sort does not define an order, and the golden case has no exact ties).

  No sort: each row's budget-th largest value is found bit by bit
  (`common.layers.topk.kth_largest_key`: 32 passes of compare and count over the row), then
  the cells above it are kept, and the first cells equal to it fill what is left of the
  budget. The same cells as lax.top_k's ranks, at a fraction of the cost on CPU, where sorting
  1024 cells per query dominated the whole layer. On CPU the rows go in cache-sized blocks
  (`topk.map_row_blocks`), the search and the tie fill alike: at T = 4096 the selection took
  ~48 ms in one block of 16 MB and ~20 ms in blocks of 4 MB.
  """
  n, h, t, tm = p_hat.shape
  key = topk.order_preserving_bits(jnp.transpose(p_hat, (2, 0, 1, 3)).reshape(t, n, h * tm))
  budget = jnp.asarray(np.minimum(tables.budget, h * tm).astype(np.int32))  # [T]
  keep = topk.map_row_blocks(_keep_row, (key, budget), n * h * tm * 4)
  return jnp.transpose(keep.reshape(t, n, h, tm), (1, 2, 0, 3))


def _keep_row(key: jax.Array, budget: jax.Array) -> jax.Array:
  """One query's kept cells, bool [N, C], from its order-preserving keys [N, C] and budget."""
  threshold = topk.kth_largest_key(key, budget)   # [N, 1]
  above = key > threshold
  tied = key == threshold
  room = budget - jnp.sum(above, axis=-1, keepdims=True, dtype=jnp.int32)
  return above | (tied & (prefix_sums.inclusive_count(tied) <= room))


def nearest_to_keys(x: jax.Array, fill_value) -> jax.Array:
  """The nearest map: [N, H, T, T_M] compressed rows -> [N, H, T, T]; keys j > i get fill_value.

  Official `resize_from_m_to_t` (eval): e.g. P_hat at key resolution is
  nearest_to_keys(P_hat, 0.0), the estimator logits for distillation nearest_to_keys(S, FP_MIN).
  """
  *lead, t, tm = x.shape
  # One gather of whole rows: entry (i, j) of every leading index reads row i * (T_M + 1) +
  # bin(i, j) of the padded table, transposed so that a row holds all leading indices. A
  # take_along_axis over the broadcast [N, H, T, T] bins made XLA:CPU build its full index
  # array in every step (7x slower, forward + backward, on the recall demo's [4, 2, 1024, 128]).
  flat_bins = (np.arange(t)[:, None] * (tm + 1) + key_bins(t, tm)).reshape(-1)
  padded = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, 1)], constant_values=fill_value)
  rows = padded.reshape(-1, t * (tm + 1)).T   # [T (T_M + 1), prod(lead)]
  out = jnp.take(rows, jnp.asarray(flat_bins, jnp.int32), axis=0, mode="clip")
  return out.T.reshape(*lead, t, t)


def expand_keep_to_keys(keep_m: jax.Array) -> jax.Array:
  """Dense reference of the key selection: bool [N, H, T, T] (query, key) from [N, H, T, T_M]."""
  return nearest_to_keys(keep_m, False)


def _expand_cells(kept: jax.Array, first: jax.Array, width: int):
  """Cells of contiguous keys -> one slot per key, cell by cell: (cell, key, valid) [.., width].

  kept: int [.., C] keys each cell contributes (0 if not kept); first: [.., C] (broadcast) the
  first key of each cell. Padded slots (past the row's total) are valid False.
  """
  inclusive = prefix_sums.inclusive_count(kept)
  cell = _first_above(inclusive, width)
  key = (jnp.take_along_axis(jnp.broadcast_to(first, kept.shape), cell, axis=-1)
         + jnp.arange(width, dtype=jnp.int32)
         - jnp.take_along_axis(inclusive - kept, cell, axis=-1))
  return cell, key, jnp.arange(width) < inclusive[..., -1:]


def _first_above(inclusive: jax.Array, width: int) -> jax.Array:
  """For s < width, the first index whose inclusive count exceeds s, int32 [.., width]
  (clipped to the last index where the row's total is at most s)."""
  slots = jnp.arange(width, dtype=jnp.int32)
  lead, c = inclusive.shape[:-1], inclusive.shape[-1]
  find = jax.vmap(lambda row: jnp.searchsorted(row, slots, side="right"))
  return jnp.minimum(find(inclusive.reshape(-1, c)).reshape(*lead, width), c - 1).astype(
      jnp.int32)


def row_sparse_key_indices(keep_m: jax.Array,
                           tables: SelectionTables) -> tuple[jax.Array, jax.Array]:
  """Kept keys per query as padded, ascending index lists.

  Args:
    keep_m: bool [N, H, T, T_M] kept compressed cells.
    tables: the static tables of this shape.

  Returns:
    key_indices int32 [N, H, T, K] and key_valid bool [N, H, T, K], K = tables.max_keys. Padded
    slots hold key 0 (always a legal causal key) and key_valid False.
  """
  kept = jnp.where(keep_m, jnp.asarray(tables.bin_count), 0)
  _, key, valid = _expand_cells(kept, jnp.asarray(tables.bin_start), tables.max_keys)
  return jnp.where(valid, key, 0).astype(jnp.int32), valid


def grouped_key_lists(keep_m: jax.Array, tables: SelectionTables) -> list[tuple[jax.Array, ...]]:
  """Kept (head, key) pairs of each query in one list shared by its heads.

  The grouped top-k spends one budget over all heads, so per-head lists (row_sparse_key_indices)
  must be padded to what one head could take, about H*k, while a query keeps about H*k keys
  over all its heads together. This layout holds exactly those: H times fewer slots.

  Each row's kept cells are first gathered in order into the most cells any row of its group
  keeps (the budget of its first row: ~32 of H*T_M = 1024 for the longest rows at T = 4096),
  and only those are expanded into keys, so the search for each key's cell runs over a few
  cells instead of the whole row.

  Args:
    keep_m: bool [N, H, T, T_M] kept compressed cells, at most the row's budget in a row
      (grouped_topk_keep's selection).
    tables: the static tables of this shape.

  Returns:
    For each of tables.row_groups, in row order, (slot_head, slot_key, slot_valid): int32,
    int32 and bool [N, rows, width]; pairs sorted by head, then key; padded slots hold (0, 0)
    and slot_valid False.
  """
  n, h, t, tm = keep_m.shape
  cells = jnp.swapaxes(keep_m, 1, 2).reshape(n, t, h * tm)  # head-major, as the top-k
  groups = []
  for start, stop, width in tables.row_groups:
    kept = cells[:, start:stop]
    cap = int(min(tables.budget[start], h * tm))  # budgets fall with the row: its first's
    if cap < h * tm:
      inclusive = prefix_sums.inclusive_count(kept)
      index = _first_above(inclusive, cap)  # [N, rows, cap], the kept cells in order
      live = jnp.arange(cap) < inclusive[..., -1:]
    else:
      index = jnp.broadcast_to(jnp.arange(h * tm, dtype=jnp.int32), kept.shape)
      live = kept
    bins = index % tm
    count = jnp.take_along_axis(jnp.asarray(tables.bin_count[None, start:stop]), bins, axis=-1)
    first = jnp.take_along_axis(jnp.asarray(tables.bin_start[None, start:stop]), bins, axis=-1)
    cell, key, valid = _expand_cells(jnp.where(live, count, 0), first, width)
    head = jnp.take_along_axis(index, cell, axis=-1) // tm
    groups.append((jnp.where(valid, head, 0).astype(jnp.int32),
                   jnp.where(valid, key, 0).astype(jnp.int32), valid))
  return groups
