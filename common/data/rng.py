"""Seed derivation: every random choice in the data layer comes from (seed, purpose, index).

Deriving seeds by hashing names (instead of `seed + 1`, `seed + 2`, ...) keeps streams for
different purposes independent, and keying per-example randomness by example index (not by
call order) makes results independent of worker and thread counts.
"""
from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(seed: int, *tags: object) -> int:
  """A uint32 seed from `seed` and any tags (strings or ints); stable across runs and machines."""
  text = "/".join([str(int(seed))] + [str(t) for t in tags])
  return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def example_rng(seed: int, *tags: object) -> np.random.Generator:
  """A numpy Generator for one example; pass the example index among the tags."""
  return np.random.default_rng(derive_seed(seed, *tags))
