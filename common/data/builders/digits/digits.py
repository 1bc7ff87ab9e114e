"""`digits`: scikit-learn's 1,797 8x8 handwritten digits (`sklearn.datasets.load_digits`).

Pixel values 0..16 are rescaled to uint8 0..255 (`round(v * 255 / 16)`); images are 8x8x1.
Split: test = 360 examples stratified by label (largest-remainder quotas, seed 0, see
`splits.stratified_test_indices`); train = the other 1,437.
"""
from __future__ import annotations

import numpy as np

from common.data.builders import base


def _load() -> tuple[np.ndarray, np.ndarray]:
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  images = np.rint(np.asarray(digits.images) * (255.0 / 16.0)).astype(np.uint8)[..., None]
  return images, np.asarray(digits.target, np.int64)


class Digits(base.StratifiedImageBuilder, skip_registration=True):
  """scikit-learn digits, 8x8x1 uint8, split 1,437 / 360 (stratified, seed 0)."""

  IMAGE_SHAPE = (8, 8, 1)
  TEST_SIZE = 360
  SPLIT_SEED = 0
  LOAD = staticmethod(_load)
