"""Label noise: a fixed fraction of TRAIN labels replaced by a uniformly random other class.

Which examples are noisy: the first round(fraction * n) of a permutation of [0, n) drawn from
(seed, 'which'), so the fraction is exact. The wrong label of example i: label + 1 + k mod C
with k uniform in [0, C - 1) from (seed, 'label', i), so it never equals the true label.
Both depend only on the example's index in the split and the seed: not on processes, workers,
batch size or the training seed (the Lazy Neuron "randomised labels" setting).
"""
from __future__ import annotations

import numpy as np

from common.data import rng as rng_lib


def noisy_indices(num_examples: int, fraction: float, seed: int) -> np.ndarray:
  """Sorted indices of the examples whose labels are replaced."""
  count = int(round(fraction * num_examples))
  perm = np.random.default_rng(rng_lib.derive_seed(seed, "label_noise", "which")).permutation(
      num_examples)
  return np.sort(perm[:count])


class LabelNoise:
  """Callable (index, label) -> possibly replaced label; picklable for worker processes."""

  def __init__(self, num_examples: int, fraction: float, seed: int, num_classes: int):
    if num_classes < 2:
      raise ValueError(f"label noise needs >= 2 classes, got num_classes={num_classes}")
    self.num_classes = num_classes
    self.seed = seed
    self.is_noisy = np.zeros(num_examples, bool)
    self.is_noisy[noisy_indices(num_examples, fraction, seed)] = True

  def __call__(self, index: int, label: int) -> int:
    if not self.is_noisy[index]:
      return int(label)
    k = rng_lib.example_rng(self.seed, "label_noise", "label", index).integers(
        self.num_classes - 1)
    return int((int(label) + 1 + k) % self.num_classes)
