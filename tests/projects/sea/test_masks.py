"""Selection: per-row budget, nearest bin map, grouped top-k and the row-sparse key lists."""
import dataclasses

import jax
import numpy as np
import pytest

from common.layers import topk
from projects.sea import masks


def test_budget_formula_and_rounding():
  budget = masks.per_row_budget(6, 4, 16, 64)
  np.testing.assert_array_equal(budget, [4096, 2048, 1365, 1024, 819, 683])
  # torch.round is half-to-even: 8*1*2/(i+1) = 1.6, 0.8 -> 2, 1; clamp_min(1) for long rows.
  np.testing.assert_array_equal(masks.per_row_budget(40, 1, 1, 2)[[0, 1, 3, 39]], [2, 1, 1, 1])
  assert masks.per_row_budget(5, 1, 2, 1)[3] == 0.0 + 1  # 2/4 = 0.5 rounds to 0, clamped to 1


def test_key_bins_match_float64_formula_away_from_boundaries():
  t, tm = 50, 16
  bins = masks.key_bins(t, tm)
  i, j = np.meshgrid(np.arange(t), np.arange(t), indexing="ij")
  exact = np.floor((j + 0.5) / (i + 1) * tm - 1e-4)
  exact = np.where(j > i, tm, np.clip(exact, 0, tm))
  np.testing.assert_array_equal(bins, exact)
  # Rows are monotone, the -1e-4 pulls exact boundaries down: i+1=8, T_M=16 -> (j+.5)*2 is odd.
  assert np.all(np.diff(np.where(j <= i, bins, tm), axis=1) >= 0)
  assert masks.key_bins(8, 16)[7, 0] == 0  # (0.5/8)*16 = 1.0 exactly -> bin 0, not 1


# 3 levels: almost every cell ties with others; without the signed zeros no row has a tie.
# block_bytes: 3 rows a block on CPU, which does not divide t = 20 (lax.map's remainder).
@pytest.mark.parametrize("levels,zeros,block_bytes",
                         [(None, True, None), (3, True, None), (None, False, None), (3, True, 576)])
def test_grouped_topk_is_across_heads_with_budget(levels, zeros, block_bytes, monkeypatch):
  if block_bytes:
    monkeypatch.setattr(topk, "SEARCH_BLOCK_BYTES", block_bytes)
  rng = np.random.default_rng(0)
  n, h, t, tm = 2, 3, 20, 8
  p = rng.random((n, h, t, tm)).astype(np.float32)
  if levels:
    p = np.floor(p * levels).astype(np.float32) / levels
  if zeros:
    p[0, 0, 5, :] = -0.0  # signed zeros and negatives keep their order
    p[0, 1, 5, :3] = [-1.5, -0.25, 0.0]
  tables = masks.selection_tables(t, tm, h, 2)
  keep = np.asarray(jax.jit(lambda p: masks.grouped_topk_keep(p, tables))(p))
  for b in range(n):
    for i in range(t):
      flat = p[b, :, i, :].reshape(-1)
      expected = np.zeros(h * tm, bool)  # rank < budget, ties to the lower index (lax.top_k)
      expected[np.argsort(-flat, kind="stable")[: int(tables.budget[i])]] = True
      np.testing.assert_array_equal(keep[b, :, i, :].reshape(-1), expected)


@pytest.mark.parametrize("t,tm,h,k", [(37, 8, 2, 3), (64, 16, 3, 2)])
def test_row_sparse_lists_equal_dense_map(t, tm, h, k):
  rng = np.random.default_rng(t)
  keep_m = rng.random((2, h, t, tm)) < 0.4
  tables = masks.selection_tables(t, tm, h, k)
  # Random masks can keep more cells than the budget; use a width that fits them all.
  tables = dataclasses.replace(tables, max_keys=t)
  run = jax.jit(lambda m: (masks.expand_keep_to_keys(m), *masks.row_sparse_key_indices(m, tables)))
  dense, idx, valid = (np.asarray(a) for a in run(keep_m))
  rebuilt = np.zeros(dense.shape[:-1] + (t + 1,), bool)
  np.put_along_axis(rebuilt, np.where(valid, idx, t), True, axis=-1)
  np.testing.assert_array_equal(rebuilt[..., :t], dense)
  step = np.diff(np.where(valid, idx, t + 1), axis=-1)
  assert np.all(np.where(valid[..., 1:], step > 0, step >= 0))  # ascending, padding last
  assert not dense[..., np.triu_indices(t, 1)[0], np.triu_indices(t, 1)[1]].any()  # causal


def test_max_keys_bounds_any_budget_respecting_selection():
  t, tm, h, k = 96, 16, 2, 4
  tables = masks.selection_tables(t, tm, h, k)
  # Worst case: one head holds every kept cell, placed on its most populated bins.
  worst = 0
  for i in range(t):
    cells = min(int(tables.budget[i]), tm)
    worst = max(worst, int(np.sort(tables.bin_count[i])[::-1][:cells].sum()))
  assert tables.max_keys == min(worst, t)
  @jax.jit
  def run(p):
    keep_m = masks.grouped_topk_keep(p, tables)
    _, valid = masks.row_sparse_key_indices(keep_m, tables)
    return valid.sum(-1), masks.expand_keep_to_keys(keep_m).sum(-1)
  kept_in_lists, kept_in_mask = run(np.random.default_rng(0).random((1, h, t, tm), np.float32))
  np.testing.assert_array_equal(kept_in_lists, kept_in_mask)


@pytest.mark.parametrize("t,tm,h,k", [(37, 8, 2, 3), (150, 16, 3, 2)])
def test_grouped_lists_hold_the_same_pairs_as_the_dense_map(t, tm, h, k):
  rng = np.random.default_rng(t)
  tables = masks.selection_tables(t, tm, h, k)
  p = rng.random((2, h, t, tm)).astype(np.float32)

  @jax.jit
  def run(p):
    keep_m = masks.grouped_topk_keep(p, tables)
    return masks.expand_keep_to_keys(keep_m), masks.grouped_key_lists(keep_m, tables)

  dense, groups = run(p)
  dense = np.asarray(dense)
  assert [g[0].shape[1] for g in groups] == [b - a for a, b, _ in tables.row_groups]
  assert sum(b - a for a, b, _ in tables.row_groups) == t
  assert len(tables.row_groups) == (1 if t <= 64 else 3)  # edges 64, 128 below 150
  rebuilt = np.zeros((2, t, h * t + 1), bool)  # column h*t collects the padded slots
  for (start, stop, width), (head, key, valid) in zip(tables.row_groups, groups):
    head, key, valid = (np.asarray(a) for a in (head, key, valid))
    assert head.shape == (2, stop - start, width)
    np.put_along_axis(rebuilt[:, start:stop], np.where(valid, head * t + key, h * t), True,
                      axis=-1)
    assert valid.sum() == dense[:, :, start:stop].sum()  # no pair twice
    # The static width bounds every budget-respecting selection of these rows, and is reached.
    worst = max(int(np.repeat(np.sort(tables.bin_count[i])[::-1], h)[:int(tables.budget[i])]
                    .sum()) for i in range(start, stop))
    assert width == max(worst, 1) >= valid.sum(-1).max()
  np.testing.assert_array_equal(rebuilt[..., :h * t].reshape(2, t, h, t).swapaxes(1, 2), dense)
