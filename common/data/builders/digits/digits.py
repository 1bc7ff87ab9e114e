"""`digits`: scikit-learn's 1,797 8x8 handwritten digits (`sklearn.datasets.load_digits`).

Pixel values 0..16 are rescaled to uint8 0..255 (`round(v * 255 / 16)`); images are 8x8x1.
Split: test = 360 examples stratified by label (largest-remainder quotas, seed 0, see
`splits.stratified_test_indices`); train = the other 1,437.
"""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from common.data.builders import base
from common.data.builders import splits

TEST_SIZE = 360
SPLIT_SEED = 0


def _load() -> tuple[np.ndarray, np.ndarray]:
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  images = np.rint(np.asarray(digits.images) * (255.0 / 16.0)).astype(np.uint8)[..., None]
  return images, np.asarray(digits.target, np.int64)


class Digits(base.LocalBuilder, skip_registration=True):
  """scikit-learn digits, 8x8x1 uint8, split 1,437 / 360 (stratified, seed 0)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # The data ships with scikit-learn.
    images, labels = _load()
    test = splits.stratified_test_indices(labels, TEST_SIZE, SPLIT_SEED)
    train = np.setdiff1d(np.arange(len(labels)), test)
    return {
        "train": self._generate_examples(images, labels, train),
        "test": self._generate_examples(images, labels, test),
    }

  def _generate_examples(self, images, labels, indices):
    for i in indices:
      yield int(i), {"image": images[i], "label": int(labels[i])}
