"""grain pipelines for text: packed language modelling and T5 span corruption.

LM: each document is tokenized, EOS appended, and documents are concatenated and cut into
chunks of seq_len + 1 tokens (PackIterDataset); a chunk gives inputs = chunk[:-1],
targets = chunk[1:]. Chunks do not overlap, so the transition from a chunk's last token to the
next chunk's first is never trained on (one target in seq_len + 1).

Span corruption: documents are tokenized WITHOUT separators and concatenated into raw chunks
of the length `span_corruption.compute_lengths` gives (T5 concatenates documents the same
way), then each chunk is corrupted with randomness keyed by its position in the stream.

Train streams are one global stream (documents shuffled per epoch with the run seed), of
which each process keeps its block of every global batch (see train_dataset). Eval streams
are the whole split in order, read by every process, which keeps the chunks whose index is
i mod process_count: the chunking then does not depend on the process count, and every process
knows the global chunk count and so yields the same number of batches. (The price, in both:
each process tokenizes the whole stream.)
"""
from __future__ import annotations

from typing import Any, Iterator

import grain
import numpy as np

from common.data import packing
from common.data import process_order
from common.data import rng as rng_lib
from common.data import sources
from common.data import span_corruption
from common.data import tokenizers
from common.data import workers

EVAL_SEED = 0  # span corruption on eval data is fixed, whatever the training seed
DOC_PREFETCH = 64  # documents tokenized ahead by the read threads


class _Tokenize:
  """Document -> int32 ids (+ EOS for LM). The tokenizer is rebuilt lazily in worker processes.

  Tokenizers without an EOS id ('chess': every game starts with ';', as in chess-GPT) are
  concatenated as they are.
  """

  def __init__(self, cfg, append_eos: bool):
    self.cfg = cfg
    self.append_eos = append_eos
    self._tokenizer = None

  def __getstate__(self):
    return dict(self.__dict__, _tokenizer=None)

  def __call__(self, element: dict[str, Any]) -> np.ndarray:
    if self._tokenizer is None:
      self._tokenizer = tokenizers.from_config(self.cfg)
    ids = self._tokenizer.encode(element[self.cfg.text_key])
    if self.append_eos and self._tokenizer.eos_id is not None:
      ids = np.append(ids, np.int32(self._tokenizer.eos_id)).astype(np.int32)
    return ids


def _lm_example(chunk: dict[str, Any]) -> dict[str, np.ndarray]:
  tokens = chunk["tokens"]
  seq_len = len(tokens) - 1
  return {
      "inputs": tokens[:-1],
      "targets": tokens[1:],
      "weights": (np.arange(seq_len) < chunk["num_tokens"] - 1).astype(np.float32),
  }


class _SpanCorrupt:
  """map_with_index: chunk number -> deterministic span corruption of that chunk."""

  def __init__(self, cfg, vocab_size: int, seed: int, *tags):
    self.cfg = cfg
    self.vocab_size = vocab_size
    self.seed = seed
    self.tags = tags
    self.targets_length = target_length(cfg)

  def __call__(self, index: int, chunk: dict[str, Any]) -> dict[str, np.ndarray]:
    cfg = self.cfg
    rng = rng_lib.example_rng(self.seed, "span_corruption", *self.tags, index)
    return span_corruption.make_example(
        chunk["tokens"][:chunk["num_tokens"]], rng, vocab_size=self.vocab_size,
        eos_id=tokenizers.EOS_ID, inputs_length=cfg.inputs_length,
        targets_length=self.targets_length, noise_density=cfg.noise_density,
        mean_noise_span_length=cfg.mean_noise_span_length)


def raw_chunk_length(cfg) -> int:
  if cfg.task_format == "lm":
    return cfg.seq_len + 1
  return span_corruption.compute_lengths(cfg.inputs_length, cfg.noise_density,
                                         cfg.mean_noise_span_length)[0]


def target_length(cfg) -> int:
  return cfg.targets_length or span_corruption.compute_lengths(
      cfg.inputs_length, cfg.noise_density, cfg.mean_noise_span_length)[1]


def _examples(docs: grain.MapDataset, cfg, *, seed: int, tags: tuple) -> grain.IterDataset:
  """Tokenize -> (workers) -> pack -> LM or span-corruption examples."""
  lm = cfg.task_format == "lm"
  # Resolve (and, for 'sentencepiece:<N>', train) the tokenizer here, once, rather than
  # racing to do it in every read thread or worker process.
  vocab = tokenizers.from_config(cfg).vocab_size
  ds = docs.map(_Tokenize(cfg, append_eos=lm)).to_iter_dataset(
      grain.ReadOptions(num_threads=cfg.read_threads, prefetch_buffer_size=DOC_PREFETCH))
  # Workers sit before packing (stateful): they only tokenize, so their number cannot change
  # which tokens land in which chunk.
  ds = workers.maybe_workers(ds, cfg.num_workers)
  ds = packing.PackIterDataset(ds, raw_chunk_length(cfg), pad_id=tokenizers.PAD_ID)
  if lm:
    return ds.map(_lm_example)
  return ds.map_with_index(_SpanCorrupt(cfg, vocab, seed, *tags))


def train_dataset(cfg, *, seed: int, process_index: int, process_count: int,
                  batch_size: int) -> grain.IterDataset:
  """Global document shuffle -> tokenize -> pack -> examples -> global batch -> own block.

  Packing is sequential, so a chunk's content depends on every document before it: every
  process builds the whole global stream and keeps its block of each global batch
  (common.data.process_order.BlockOfBatch). The global batch then does not depend on the
  process count, and the iterator state (in global batches) is the same on every process.
  """
  process_order.check_share(process_index, process_count, batch_size)
  source, _ = sources.open_split(cfg, cfg.train_split)
  if not len(source):
    raise ValueError(f"{cfg.name!r} split {cfg.train_split!r} has no documents to train on.")
  docs = grain.MapDataset.source(source)
  docs = docs.shuffle(seed=rng_lib.derive_seed(seed, "shuffle")).repeat()
  ds = _examples(docs, cfg, seed=seed, tags=("train",))
  ds = ds.batch(batch_size * process_count, drop_remainder=True)
  if process_count > 1:
    ds = ds.map(process_order.BlockOfBatch(process_index, process_count))
  return ds


def _ceil_div(a: int, b: int) -> int:
  return -(-a // b)


def _padding_like(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  return {k: np.zeros_like(v) for k, v in example.items()}


def eval_batches(cfg, *, split: str, process_index: int, process_count: int,
                 batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """Ordered, finite, padded batches with 'mask'; equal batch counts on every process."""
  source, _ = sources.open_split(cfg, split)
  examples = iter(_examples(grain.MapDataset.source(source), cfg, seed=EVAL_SEED,
                            tags=("eval", split)))
  buffer, total, emitted, template = [], 0, 0, None

  def emit(rows):
    real = len(rows)
    rows = rows + [_padding_like(template)] * (batch_size - real)
    batch = {k: np.stack([r[k] for r in rows]) for k in template}
    batch["mask"] = (np.arange(batch_size) < real).astype(np.float32)
    return batch

  for k, example in enumerate(examples):
    total, template = k + 1, template or example
    if k % process_count != process_index:
      continue
    buffer.append(example)
    if len(buffer) == batch_size:
      yield emit(buffer)
      buffer, emitted = [], emitted + 1
  # Process 0 holds the most chunks; every process pads up to its batch count.
  needed = _ceil_div(_ceil_div(total, process_count), batch_size)
  while emitted < needed:
    yield emit(buffer)
    buffer, emitted = [], emitted + 1
