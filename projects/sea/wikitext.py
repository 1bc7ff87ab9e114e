"""Wikitext-2 training windows for the OPT configs (official `Wikitext2Dataset(subset='train')`).

The train text ("\\n\\n".join of wiki.train.raw's lines, OPT BPE, one BOS) is cut into windows
of seq_len + 1 tokens starting at every offset (official: strided_indexing False for 'train', so
index i starts at token i), shuffled; inputs/targets are the HF shift of one window.
"""
from __future__ import annotations

import os

import grain
import numpy as np

from projects.sea import perplexity


def train_ids(data_config) -> np.ndarray:
  for name in ("wiki.train.raw", "wikitext-2-raw/wiki.train.raw"):
    path = os.path.join(data_config.manual_dir, name)
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        text = "\n\n".join(f.readlines())
      return perplexity.opt_bpe_encode(text, data_config.tokenizer_dir)
  raise FileNotFoundError(f"no wiki.train.raw under config.data.manual_dir="
                          f"{data_config.manual_dir!r}: unzip wikitext-2-raw-v1 there.")


class _Window:
  def __init__(self, ids: np.ndarray, seq_len: int):
    self.ids, self.seq_len = ids, seq_len

  def __call__(self, start: int) -> dict[str, np.ndarray]:
    w = self.ids[start:start + self.seq_len + 1]
    return {"inputs": w[:-1], "targets": w[1:], "weights": np.ones(self.seq_len, np.float32)}


def train_iterator(data_config, *, seed: int, process_index: int, process_count: int,
                   batch_size: int):
  ids = train_ids(data_config)
  starts = len(ids) - data_config.seq_len - 1
  if starts < 1:
    raise ValueError(f"the training text has {len(ids)} tokens, fewer than seq_len + 1.")
  ds = (grain.MapDataset.range(starts).shuffle(seed=seed).repeat()
        [process_index::process_count].map(_Window(ids, data_config.seq_len)).batch(batch_size))
  return ds.to_iter_dataset()
