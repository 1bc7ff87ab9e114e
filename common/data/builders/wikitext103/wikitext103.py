"""`wikitext103`: Wikitext-103 (raw) as the TFDS dataset 'tfds:wikitext103', one article per example.

TFDS has no catalog builder for Wikitext-103 (see projects/routing_transformer/configs/paper.py). Importing this module registers
one under that name, so `config.data.name='tfds:wikitext103'` with `config.data.prepare=True`
builds it in-process (array_record, no TensorFlow) through common.data.sources, the same path
as any other 'tfds:' dataset. projects/routing_transformer/configs/stdlib_demo.py:colab imports it
(it is not in the demo REGISTRY: it downloads); text_domains' colab config reads the same parquet
files from a folder (`parquet_rows`, `articles`).

Source: the Hugging Face Hub dataset `Salesforce/wikitext`, config `wikitext-103-raw-v1` (its
parquet files; one row per line of wiki.{train,valid,test}.raw, blank lines as ''). Building
downloads ~300 MB (needs `huggingface_hub` and `pyarrow`, both in Colab, imported only then).
Rows are grouped into articles at each top-level heading row (' = Title = '); an article's text
is its rows joined as they were, with ' \\n' back in place of each blank row, so the lines read
as in the raw files. Splits: train (~28k articles, ~540 MB), validation, test.
"""
from __future__ import annotations

import glob
import os
from typing import Callable, Iterable, Iterator

import tensorflow_datasets as tfds

from common.data.builders import base

HF_REPO = "Salesforce/wikitext"
HF_CONFIG = "wikitext-103-raw-v1"
# TFDS split -> the split name in the parquet file names.
SPLITS = {"train": "train", "validation": "validation", "test": "test"}
BLANK_ROW = " \n"


def is_title(row: str) -> bool:
  """A top-level heading row: ' = Title = ' (subsections are ' = = Sub = = ')."""
  s = row.strip()
  return len(s) > 4 and s.startswith("= ") and s.endswith(" =") and not s.startswith("= =")


def articles(rows: Iterable[str]) -> Iterator[str]:
  """The articles of a split's rows, each starting at its heading row; text before the first
  heading (none in Wikitext) is an article of its own."""
  current: list[str] = []
  for row in rows:
    if is_title(row) and any(r.strip() for r in current):
      yield "".join(current)
      current = []
    current.append(row if row else BLANK_ROW)
  if any(r.strip() for r in current):
    yield "".join(current)


def hub_rows(split: str, config: str = HF_CONFIG) -> list[str]:
  """The rows of one split of a Salesforce/wikitext config (wikitext-103-raw-v1 here; the SEA
  notebook reads wikitext-2-raw-v1), downloaded from the Hub (huggingface_hub, pyarrow: Colab
  has both). One row per line of the raw file, newline kept, blank lines as ''."""
  from huggingface_hub import snapshot_download  # pylint: disable=g-import-not-at-top
  name = SPLITS.get(split, split)
  root = snapshot_download(HF_REPO, repo_type="dataset",
                           allow_patterns=[f"{config}/{name}-*.parquet"])
  files = sorted(glob.glob(os.path.join(root, config, f"{name}-*.parquet")))
  if not files:
    raise FileNotFoundError(f"no {config}/{name}-*.parquet in {HF_REPO} ({root}).")
  return list(parquet_rows(files))


def parquet_rows(files: Iterable[str]) -> Iterator[str]:
  """The rows of the 'text' column of these parquet files, in order. Read a batch at a time, so
  a reader that stops early (text_domains' Wikitext prose) never loads a whole split."""
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  for path in files:
    for batch in pq.ParquetFile(path).iter_batches(columns=["text"]):
      yield from batch.column(0).to_pylist()


class Wikitext103(base.LocalBuilder):
  """Registered (unlike the demo builders), so tfds.builder('wikitext103') finds it."""

  ROWS: Callable[[str], list[str]] = staticmethod(hub_rows)  # tests replace it

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info({"text": tfds.features.Text()})

  def _split_generators(self, dl_manager):
    del dl_manager  # huggingface_hub downloads (and caches) the parquet files
    return {split: self._generate_examples(split) for split in SPLITS}

  def _generate_examples(self, split):
    for i, text in enumerate(articles(type(self).ROWS(split))):
      yield i, {"text": text}
