"""Invariants of the multi-block mask collator (official semantics, seeded numpy)."""
import logging
import math

import numpy as np
import pytest

from projects.sparse_jepa.masks import MultiBlockMaskCollator

# The official ImageNet recipe (configs/in1k_vith14_ep300.yaml) at patch 16, and the CIFAR case.
IN1K = dict(input_size=224, patch_size=16, enc_mask_scale=(0.85, 1.0),
            pred_mask_scale=(0.15, 0.2), aspect_ratio=(0.75, 1.5), nenc=1, npred=4, min_keep=10)
CIFAR = dict(IN1K, input_size=32, patch_size=4, min_keep=4)


def test_shapes_ranges_and_truncation():
  col = MultiBlockMaskCollator(**IN1K, seed=3)
  enc, pred = col(16, step=0)
  assert enc.dtype == pred.dtype == np.int32
  assert enc.shape[:2] == (1, 16) and pred.shape[:2] == (4, 16)
  assert enc.shape[2] > 10 and pred.shape[2] > 10
  for arr in (enc, pred):
    assert arr.min() >= 0 and arr.max() < 14 * 14
    assert np.all(np.diff(arr, axis=-1) > 0)  # ascending, no repeats
  # The target size is one (h, w) per batch; every target block has exactly h*w patches, so no
  # truncation happens without a constraint, and K equals the sampled block area.
  h, w = col.block_size(np.random.default_rng([3, 0, 0]), col.pred_mask_scale, col.aspect_ratio)
  assert pred.shape[2] == h * w


def test_block_size_formula():
  col = MultiBlockMaskCollator(**IN1K)
  for seed in range(20):
    u = np.random.default_rng(seed).random()
    keep = int(14 * 14 * (0.15 + u * 0.05))
    ar = 0.75 + u * 0.75  # the same draw sets scale and aspect (official quirk)
    want = (min(int(round(math.sqrt(keep * ar))), 13), min(int(round(math.sqrt(keep / ar))), 13))
    assert col.block_size(np.random.default_rng(seed), (0.15, 0.2), (0.75, 1.5)) == want
  # A full-image scale is clamped below the grid (official `while h >= height: h -= 1`).
  assert col.block_size(np.random.default_rng(0), (1.0, 1.0), (1.0, 1.0)) == (13, 13)


def test_context_disjoint_from_targets(caplog):
  col = MultiBlockMaskCollator(**IN1K)
  with caplog.at_level(logging.WARNING, logger="projects.sparse_jepa.masks"):
    for step in range(5):
      enc, pred = col(8, step)
      for b in range(8):
        # Truncation keeps a prefix, so overlap with the kept target prefix is the real test.
        assert not set(enc[0, b]) & set(pred[:, b].ravel())
  assert not caplog.records  # no constraint was relaxed in these draws


def test_relaxation_drops_constraints_but_keeps_min_keep(caplog):
  # On the 8x8 CIFAR grid the 7x7 context block can only sit at (0, 0); with large targets it often
  # keeps <= min_keep patches and the official fallback drops target constraints one by one.
  col = MultiBlockMaskCollator(**dict(CIFAR, pred_mask_scale=(0.3, 0.35)))
  with caplog.at_level(logging.WARNING, logger="projects.sparse_jepa.masks"):
    for step in range(3):
      enc, pred = col(8, step)
      assert enc.shape[2] > 4 and pred.shape[2] > 4
  assert any("dropping an acceptable region" in r.getMessage() for r in caplog.records)


def test_allow_overlap_context_is_the_bare_block():
  col = MultiBlockMaskCollator(**dict(IN1K, allow_overlap=True))
  enc, pred = col(4, 0)
  size_rng = np.random.default_rng([0, 0, 0])
  col.block_size(size_rng, col.pred_mask_scale, col.aspect_ratio)  # the target draw comes first
  h, w = col.block_size(size_rng, col.enc_mask_scale, (1.0, 1.0))
  assert enc.shape[2] == h * w  # no target constraint: every context is the full block
  assert any(set(enc[0, b]) & set(pred[:, b].ravel()) for b in range(4))


def test_deterministic_by_seed_and_step():
  a, b = MultiBlockMaskCollator(**IN1K, seed=1), MultiBlockMaskCollator(**IN1K, seed=1)
  for x, y in zip(a(4, 7), b(4, 7)):
    np.testing.assert_array_equal(x, y)
  diff_step = any(not np.array_equal(x, y) for x, y in zip(a(4, 7), a(4, 8)))
  diff_seed = any(not np.array_equal(x, y)
                  for x, y in zip(a(4, 7), MultiBlockMaskCollator(**IN1K, seed=2)(4, 7)))
  assert diff_step and diff_seed


def test_impossible_min_keep_raises_with_numbers():
  col = MultiBlockMaskCollator(**dict(CIFAR, pred_mask_scale=(0.05, 0.06)))
  with pytest.raises(ValueError, match=r"target block of 2x2=4 patches .* min_keep=4"):
    col(2, 0)


def test_bad_config_raises():
  with pytest.raises(ValueError, match="pred_mask_scale"):
    MultiBlockMaskCollator(**dict(IN1K, pred_mask_scale=(0.3, 0.2)))
  with pytest.raises(ValueError, match="npred"):
    MultiBlockMaskCollator(**dict(IN1K, npred=0))
  with pytest.raises(ValueError, match="step"):
    MultiBlockMaskCollator(**IN1K)(2, -1)


def test_grain_random_map_is_reproducible():
  grain = pytest.importorskip("grain")
  col = MultiBlockMaskCollator(**IN1K)
  images = np.zeros((12, 1), np.float32)

  def pipeline():
    ds = grain.MapDataset.source([{"image": images[i]} for i in range(12)]).batch(4)
    return list(ds.random_map(col, seed=5))

  first, second = pipeline(), pipeline()
  assert len(first) == 3
  for x, y in zip(first, second):
    assert x["masks_enc"].shape[:2] == (1, 4) and x["masks_pred"].shape[:2] == (4, 4)
    np.testing.assert_array_equal(x["masks_pred"], y["masks_pred"])
    np.testing.assert_array_equal(x["masks_enc"], y["masks_enc"])
