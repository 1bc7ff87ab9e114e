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
import math

import jax
import jax.numpy as jnp
import numpy as np

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
    top_k_elems: how many sorted cells can ever be kept (min(ceil(max budget), H*T_M)).
    bin_start: int32 [T, T_M], first key of each bin (only meaningful where bin_count > 0).
    bin_count: int32 [T, T_M], keys per bin (0 for bins no key maps to).
    max_keys: the most keys a single head can keep for any query (static row-sparse width).
  """
  budget: np.ndarray
  top_k_elems: int
  bin_start: np.ndarray
  bin_count: np.ndarray
  max_keys: int


@functools.lru_cache(maxsize=32)
def selection_tables(seq_len: int, predictor_length: int, num_heads: int, k: int,
                     k_oversample: float = 1.0) -> SelectionTables:
  """Builds (and caches) the static tables for one shape."""
  budget = per_row_budget(seq_len, num_heads, k, predictor_length, k_oversample)
  top_k_elems = min(int(math.ceil(float(budget.max()))), num_heads * predictor_length)
  bin_start = np.zeros((seq_len, predictor_length), np.int32)
  bin_count = np.zeros((seq_len, predictor_length), np.int32)
  max_keys = 1
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
      cells = min(int(budget[i]), predictor_length)  # one head holds at most T_M cells
      max_keys = max(max_keys, int(np.sort(bin_count[i])[::-1][:cells].sum()))
  return SelectionTables(budget, top_k_elems, bin_start, bin_count, min(max_keys, seq_len))


def grouped_topk_keep(p_hat: jax.Array, tables: SelectionTables) -> jax.Array:
  """Kept compressed cells: bool [N, H, T, T_M] from P_hat [N, H, T, T_M].

  The rank is taken over each query's H*T_M cells (head-major, as `transpose(1, 2).reshape`);
  lax.top_k breaks exact ties towards the lower flat index (torch's unstable sort does not
  define an order; the golden case has no exact ties).
  """
  n, h, t, tm = p_hat.shape
  flat = jnp.swapaxes(p_hat, 1, 2).reshape(n, t, h * tm)
  _, order = jax.lax.top_k(flat, tables.top_k_elems)
  budget = jnp.asarray(tables.budget)
  ranks = jnp.arange(tables.top_k_elems, dtype=jnp.float32)
  keep_sorted = ranks[None, None, :] < budget[None, :, None]
  keep = jnp.put_along_axis(jnp.zeros(flat.shape, bool), order, keep_sorted, axis=-1, inplace=False)
  return jnp.swapaxes(keep.reshape(n, t, h, tm), 1, 2)


def nearest_to_keys(x: jax.Array, fill_value) -> jax.Array:
  """The nearest map: [N, H, T, T_M] compressed rows -> [N, H, T, T]; keys j > i get fill_value.

  Official `resize_from_m_to_t` (eval): e.g. P_hat at key resolution is
  nearest_to_keys(P_hat, 0.0), the estimator logits for distillation nearest_to_keys(S, FP_MIN).
  """
  t, tm = x.shape[-2], x.shape[-1]
  bins = jnp.asarray(key_bins(t, tm))  # [T, T], T_M = the padded (dropped) column
  padded = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, 1)], constant_values=fill_value)
  return jnp.take_along_axis(padded, jnp.broadcast_to(bins, x.shape[:-2] + bins.shape), axis=-1)


def expand_keep_to_keys(keep_m: jax.Array) -> jax.Array:
  """Dense reference of the key selection: bool [N, H, T, T] (query, key) from [N, H, T, T_M]."""
  return nearest_to_keys(keep_m, False)


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
  kmax = tables.max_keys
  count = jnp.asarray(tables.bin_count)
  start = jnp.asarray(tables.bin_start)
  kept = jnp.where(keep_m, count, 0)
  inclusive = jnp.cumsum(kept, axis=-1)
  exclusive = inclusive - kept
  slots = jnp.arange(kmax, dtype=jnp.int32)
  lead = inclusive.shape[:-1]
  find = jax.vmap(lambda row: jnp.searchsorted(row, slots, side="right"))
  bin_of_slot = find(inclusive.reshape(-1, inclusive.shape[-1])).reshape(*lead, kmax)
  bin_of_slot = jnp.minimum(bin_of_slot, keep_m.shape[-1] - 1).astype(jnp.int32)
  start_b = jnp.take_along_axis(jnp.broadcast_to(start, kept.shape), bin_of_slot, axis=-1)
  offset_b = jnp.take_along_axis(exclusive, bin_of_slot, axis=-1)
  valid = slots < inclusive[..., -1:]
  indices = jnp.where(valid, start_b + slots - offset_b, 0).astype(jnp.int32)
  return indices, valid
