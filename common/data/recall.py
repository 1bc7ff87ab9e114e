"""Associative recall at long range: a synthetic LM stream whose answers sit at a known distance.

The long-context demos (routing_transformer, sea) need a task where attending far back is the
only way to predict, and where "far" is known exactly. Each sequence of `seq_len` + 1 tokens
holds `num_keys` stores and as many queries, among random filler tokens:

  store   one token per (key, value) pair: id = PAIRS + key * num_values + value
  query   the key's query token, QUERIES + key, at a later position q, followed by
  answer  the value's answer token, ANSWERS + value, at q + 1: the only weighted target.

Every key of the vocabulary is stored once per sequence with a fresh random value, so nothing
but the store itself tells the value: a model that cannot see the store is at chance
(ln num_values nats, the unigram entropy of the answers); one that can is at 0. A store is
matched by content (its token shares the key with the query), not by position, which is what
content-based sparse attention (routing, SEA's estimate, region routing) claims to find.

Distances: a fraction `near_fraction` of the keys are queried 2..`near_max` tokens after their
store (inside any local window: a sanity check that every model can recall at all); the rest
`far_min` or more tokens after it (beyond a local window of that size). The distance of each
answer is in the batch ('distance', int32 [B, T], -1 where there is no answer), so evaluators
can score by distance bucket.

Batches ('lm' format, common.data.config): 'inputs', 'targets' int32 [B, seq_len], 'weights'
float32 [B, seq_len] (1 at answers), 'distance' int32 [B, seq_len]. Training example i of the
global stream comes from (seed, i) alone; the validation split holds `eval_examples` fixed
examples (seed-independent, so runs with different seeds are scored on the same data).
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import grain
import numpy as np

from common.data import process_order, rng as rng_lib

BOS = 0          # first input token; never a target
PAIRS = 1        # store tokens start here
SPLITS = ("train", "validation")
EVAL_SEED = 1234  # the validation examples do not depend on the run's seed
_STREAM_LENGTH = 2**31 - 1  # "infinite": indexable, so grain checkpoints the position


@dataclasses.dataclass(frozen=True)
class RecallSpec:
  """The task's shape; `from_config(config.data)` reads it from a 'recall' data config."""
  seq_len: int = 2048
  num_keys: int = 16
  num_values: int = 8
  num_fillers: int = 16
  near_max: int = 64
  far_min: int = 512
  near_fraction: float = 0.25

  @property
  def queries(self) -> int:
    return PAIRS + self.num_keys * self.num_values

  @property
  def answers(self) -> int:
    return self.queries + self.num_keys

  @property
  def fillers(self) -> int:
    return self.answers + self.num_values

  @property
  def vocab_size(self) -> int:
    return self.fillers + self.num_fillers

  def check(self) -> None:
    """One line naming the field and what fits, as every data check does."""
    n = self.seq_len
    for name in ("num_keys", "num_values", "num_fillers", "near_max", "far_min"):
      if getattr(self, name) < 1:
        raise ValueError(f"config.data.{name}={getattr(self, name)} is not allowed: >= 1.")
    if self.near_max < 2:
      raise ValueError(f"config.data.near_max={self.near_max} is not allowed: >= 2 (the "
                       "answer follows its query, so a store sits at least 2 tokens back).")
    if self.far_min <= self.near_max:
      raise ValueError(f"config.data.far_min={self.far_min} is not allowed: it must exceed "
                       f"near_max={self.near_max}, so that near and far do not overlap.")
    if not 0.0 <= self.near_fraction <= 1.0:
      raise ValueError(f"config.data.near_fraction={self.near_fraction} is not allowed: a "
                       "fraction in [0, 1].")
    # Room for every far query after its store, and for all 3 tokens of every key.
    if self.far_min + 2 > n or 3 * self.num_keys > n // 2:
      raise ValueError(f"config.data.seq_len={n} is too short for num_keys={self.num_keys} "
                       f"and far_min={self.far_min}: it needs seq_len >= far_min + 2 and "
                       f">= 6 * num_keys.")


def from_config(data_config) -> RecallSpec:
  return RecallSpec(**{f.name: data_config[f.name] for f in dataclasses.fields(RecallSpec)})


def example(spec: RecallSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
  """One sequence: inputs/targets [seq_len], weights at the answers, their store distance."""
  n = spec.seq_len + 1  # tokens; inputs are [:-1], targets [1:]
  tokens = rng.integers(spec.fillers, spec.vocab_size, size=n)
  tokens[0] = BOS
  free = np.ones(n, bool)
  free[0] = False
  distance = np.full(n, -1, np.int64)
  values = rng.integers(0, spec.num_values, size=spec.num_keys)
  near = rng.random(spec.num_keys) < spec.near_fraction
  for key in rng.permutation(spec.num_keys):
    lo, hi = (2, spec.near_max) if near[key] else (spec.far_min, n - 3)
    for _ in range(1000):  # rejection sampling; the spec check leaves plenty of room
      d = int(rng.integers(lo, hi + 1))
      q = int(rng.integers(1 + d, n - 1)) if 1 + d < n - 1 else -1
      if q > 0 and free[q] and free[q + 1] and free[q - d]:
        break
    else:
      raise RuntimeError(f"could not place key {key} in {spec}; lower num_keys or far_min.")
    s = q - d
    tokens[s] = PAIRS + key * spec.num_values + values[key]
    tokens[q] = spec.queries + key
    tokens[q + 1] = spec.answers + values[key]
    free[[s, q, q + 1]] = False
    distance[q] = d  # input position q predicts the answer at q + 1
  weights = (distance[:-1] >= 0).astype(np.float32)
  return {"inputs": tokens[:-1].astype(np.int32), "targets": tokens[1:].astype(np.int32),
          "weights": weights, "distance": distance[:-1].astype(np.int32)}


class _Examples(grain.sources.RandomAccessDataSource):
  """Example i from (seed, tag, i): no state but the index, so any process count agrees."""

  def __init__(self, spec: RecallSpec, seed: int, tag: str, length: int):
    self.spec, self.seed, self.tag, self.length = spec, seed, tag, length

  def __len__(self) -> int:
    return self.length

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return example(self.spec, rng_lib.example_rng(self.seed, self.tag, int(index)))


def train_dataset(cfg, *, seed: int, process_index: int, process_count: int,
                  batch_size: int) -> grain.IterDataset:
  """The global stream of fresh examples, this process's block of every global batch."""
  spec = from_config(cfg)
  ds = grain.MapDataset.source(_Examples(spec, seed, "train", _STREAM_LENGTH))
  ds = process_order.local_share(ds, process_index=process_index, process_count=process_count,
                                 local_batch=batch_size)
  return ds.batch(batch_size, drop_remainder=True).to_iter_dataset(
      grain.ReadOptions(num_threads=cfg.read_threads, prefetch_buffer_size=cfg.prefetch))


def eval_batches(cfg, *, split: str, process_index: int, process_count: int,
                 batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """The `eval_examples` fixed examples of `split`, in order, padded, with 'mask'."""
  spec = from_config(cfg)
  source = _Examples(spec, EVAL_SEED, split, cfg.eval_examples)
  mine = list(range(process_index, len(source), process_count))
  per_process = -(-len(source) // process_count)
  for start in range(0, -(-per_process // batch_size) * batch_size, batch_size):
    rows = [source[i] for i in mine[start:start + batch_size]]
    real = len(rows)
    template = source[0]
    rows += [{k: np.zeros_like(v) for k, v in template.items()}] * (batch_size - real)
    batch = {k: np.stack([r[k] for r in rows]) for k in template}
    batch["mask"] = (np.arange(batch_size) < real).astype(np.float32)
    yield batch


def batch_spec(cfg, batch_size: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  shape = (batch_size, cfg.seq_len)
  return {"inputs": (shape, np.dtype("int32")), "targets": (shape, np.dtype("int32")),
          "weights": (shape, np.dtype("float32")), "distance": (shape, np.dtype("int32"))}
