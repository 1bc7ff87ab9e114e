"""Deterministic split assignment used by the demo builders.

Implemented here with numpy rather than scikit-learn's `train_test_split`, so that a split
never changes with a scikit-learn upgrade: numpy's PCG64 streams for a fixed seed are stable.
"""
from __future__ import annotations

import hashlib

import numpy as np


def stratified_test_indices(labels: np.ndarray, test_size: int, seed: int) -> np.ndarray:
  """Sorted indices of a test set of exactly `test_size` examples, stratified by label.

  Each class gets `test_size * class_count / n` test examples, rounded by largest remainder
  (ties broken by class id) so the total is exact; within a class the examples are chosen by
  a permutation from `np.random.default_rng(seed)`, drawn class by class in ascending order.
  """
  labels = np.asarray(labels)
  classes, counts = np.unique(labels, return_counts=True)
  quota = test_size * counts / len(labels)
  take = np.floor(quota).astype(int)
  short = test_size - take.sum()
  # Largest remainder first; a stable sort breaks ties by class order.
  order = np.argsort(-(quota - take), kind="stable")
  take[order[:short]] += 1
  rng = np.random.default_rng(seed)
  chosen = []
  for cls, k in zip(classes, take):
    members = np.flatnonzero(labels == cls)
    chosen.append(members[rng.permutation(len(members))[:k]])
  return np.sort(np.concatenate(chosen))


def hash_bucket(key: str, buckets: int = 1000) -> int:
  """A stable bucket in [0, buckets) for `key` (md5, independent of PYTHONHASHSEED)."""
  digest = hashlib.md5(key.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "little") % buckets
