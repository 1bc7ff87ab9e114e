"""Sparse features in superposition: a synthetic task whose true features are known.

As in "Toy Models of Superposition" (Elhage et al. 2022): `num_features` F features, each on
with probability `density` and then uniform in [0, 1), are added along F fixed random unit
directions of an `input_dim` d < F space, so they are superposed and no linear read-out
separates them:

  features  a float32 [B, F]   the truth (a model's target; its evaluator's labels: a > 0)
  x         float32 [B, d]     = a @ E, E [F, d] fixed by `directions_seed`

Batches: {'x', 'features'}. Training batch i of the global stream is drawn whole from
(seed, i), vectorised (per-example generators would cost more than the tiny models' steps),
and each process takes its block of it, so the stream does not depend on the process count;
grain indexes the batches, so its position is checkpointed. The validation split holds
`eval_examples` fixed examples (seed-independent, as every run of a comparison must be scored
on the same data).
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import grain
import numpy as np

from common.data import rng as rng_lib

SPLITS = ("train", "validation")
EVAL_SEED = 1234
_STREAM_LENGTH = 2**31 - 1  # "infinite": indexable, so grain checkpoints the position


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
  """The task's shape; `from_config(config.data)` reads it from a 'superposition' config."""
  num_features: int = 128
  input_dim: int = 32
  density: float = 0.03
  directions_seed: int = 0

  def check(self) -> None:
    """One line naming the field and what fits, as every data check does."""
    if not 0 < self.input_dim <= self.num_features:
      raise ValueError(f"config.data.input_dim={self.input_dim} is not allowed: 1..num_features"
                       f"={self.num_features} (d < F puts the features in superposition).")
    if not 0 < self.density < 1:
      raise ValueError(f"config.data.density={self.density} is not allowed: in (0, 1).")

  def directions(self) -> np.ndarray:
    """E [F, d]: unit rows, fixed by directions_seed."""
    e = rng_lib.example_rng(self.directions_seed, "directions").normal(
        size=(self.num_features, self.input_dim))
    return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)

  def sample(self, rng: np.random.Generator, n: int, directions: np.ndarray
             ) -> dict[str, np.ndarray]:
    on = rng.random((n, self.num_features)) < self.density
    a = (on * rng.random((n, self.num_features))).astype(np.float32)
    return {"x": a @ directions, "features": a}


def from_config(data_config) -> FeatureSpec:
  return FeatureSpec(**{f.name: data_config[f.name] for f in dataclasses.fields(FeatureSpec)})


class _Batches(grain.sources.RandomAccessDataSource):
  """Global batch i from (seed, i); this process's block of it."""

  def __init__(self, spec: FeatureSpec, seed: int, block: slice, global_batch: int):
    self.spec, self.seed, self.block, self.global_batch = spec, seed, block, global_batch
    self.directions = spec.directions()

  def __len__(self) -> int:
    return _STREAM_LENGTH

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    full = self.spec.sample(rng_lib.example_rng(self.seed, "train", int(index)),
                            self.global_batch, self.directions)
    return {k: v[self.block] for k, v in full.items()}


def train_dataset(cfg, *, seed: int, process_index: int, process_count: int,
                  batch_size: int) -> grain.IterDataset:
  spec = from_config(cfg)
  block = slice(process_index * batch_size, (process_index + 1) * batch_size)
  return grain.MapDataset.source(_Batches(spec, seed, block, batch_size * process_count)
                                 ).to_iter_dataset(grain.ReadOptions(
                                     num_threads=cfg.read_threads, prefetch_buffer_size=cfg.prefetch))


def eval_set(cfg) -> dict[str, np.ndarray]:
  """The `eval_examples` fixed validation examples, whole (evaluators read them at once)."""
  spec = from_config(cfg)
  return spec.sample(rng_lib.example_rng(EVAL_SEED, "validation"), cfg.eval_examples,
                     spec.directions())


def eval_batches(cfg, *, split: str, process_index: int, process_count: int,
                 batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """The fixed validation examples, this process's share, in order, padded, with 'mask'."""
  del split   # generated data: every evaluation reads the same fixed examples
  data = eval_set(cfg)
  mine = np.arange(process_index, cfg.eval_examples, process_count)
  per_process = -(-cfg.eval_examples // process_count)
  for start in range(0, -(-per_process // batch_size) * batch_size, batch_size):
    rows = mine[start:start + batch_size]
    pad = batch_size - len(rows)
    batch = {k: np.concatenate([v[rows], np.zeros((pad,) + v.shape[1:], v.dtype)])
             for k, v in data.items()}
    batch["mask"] = (np.arange(batch_size) < len(rows)).astype(np.float32)
    yield batch


def batch_spec(cfg, batch_size: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  return {"x": ((batch_size, cfg.input_dim), np.dtype("float32")),
          "features": ((batch_size, cfg.num_features), np.dtype("float32"))}
