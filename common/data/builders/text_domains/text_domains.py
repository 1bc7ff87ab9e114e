"""`text_domains`: Python code, English prose and chess games as one corpus of equal parts.

A corpus whose domains really differ, built with no download, for domain-specialisation demos
(Monet's expert purging: projects/monet/demo.py). One example per document; its `path` starts
with its domain:
  python/<stdlib path>   a `.py` source of the running Python's standard library (the files
                         `pystdlib_text` keeps) of at most `max_file_chars` characters, so that
                         the domain holds many files rather than a few large ones;
  prose/<topic>          English: a topic of the Python language reference that ships with
                         Python as `pydoc_data.topics` (the text `help('assert')` shows);
  chess/<game index>     a Stockfish self-play transcript (';1.e4 e5 2.Nf3 ...'), generated as
                         `chess_games` does (engine_games.py; needs Debian's
                         `stockfish`; weaker settings, `chess_settings`), seed `chess_seed`.
Files and topics are taken in md5(path) order (a fixed sample, not one package or one letter),
games in index order, each domain until its text reaches `chars_per_domain` characters, so the
three are about equal in size.

Split by document: `validation` holds those whose md5(path) falls in 200 of 1,000 buckets
(about 20%: the prose has only ~40 topics), `train` the rest. Features: `path`, `text`, `domain`
(one of DOMAINS).
The sources and topics differ between Python versions and the games between Stockfish versions:
the builder config is named for the Python version, and the Stockfish version is in the
dataset's metadata.
"""
from __future__ import annotations

import dataclasses
import os
import sysconfig

import tensorflow_datasets as tfds

from common.data.builders import base
from common.data.builders import splits
from common.data.builders.chess_games import chess_games
from common.data.builders.chess_games import engine_games
from common.data.builders.chess_games import transcript
from common.data.builders.pystdlib_text import pystdlib_text

DOMAINS = ("python", "prose", "chess")
VALIDATION_BUCKETS = 200  # of 1,000: ~20%, so every domain has held-out documents


@dataclasses.dataclass(eq=False)
class TextDomainsConfig(tfds.core.BuilderConfig):
  """How much of each domain, and how the chess games are generated."""
  chars_per_domain: int = 200_000
  max_file_chars: int = 16_000
  chess_seed: int = 1
  chess_max_games: int = 2_000          # a bound: generation stops at chars_per_domain
  # Weaker play than chess_games' (at most 32 nodes a move, not 512): these games only need to
  # be chess, and fewer nodes are quicker to play (the build runs in the suite's notebook check).
  chess_settings: engine_games.EngineSettings = dataclasses.field(
      default_factory=lambda: engine_games.EngineSettings(nodes_choices=(1, 8, 32)))
  chess_max_chars: int = 1023
  stockfish_path: str = ""
  workers: int = 0


DEMO = TextDomainsConfig(name=pystdlib_text.python_config_name(),
                         description="~200 kB each of stdlib code, pydoc prose, chess games")


def by_md5(paths):
  return sorted(paths, key=lambda p: splits.hash_bucket(p, 1 << 62))


def prose_documents():
  """(path, text) of the pydoc topics, in md5(path) order."""
  from pydoc_data import topics  # pylint: disable=g-import-not-at-top
  for path in by_md5(f"prose/{name}" for name in topics.topics):
    yield path, topics.topics[path.split("/", 1)[1]]


def python_documents(max_chars: int):
  """(path, text) of the stdlib sources of at most max_chars characters, in md5(path) order."""
  root = sysconfig.get_paths()["stdlib"]
  for rel in by_md5(pystdlib_text.stdlib_files(root)):
    with open(os.path.join(root, *rel.split("/")), "rb") as f:
      raw = f.read()
    if len(raw) > max_chars:   # bytes >= characters: no file over the limit is decoded
      continue
    try:
      yield f"python/{rel}", raw.decode("utf-8")
    except UnicodeDecodeError:
      continue


def _take(items, limit: int):
  """The leading items until their texts reach `limit` characters."""
  total = 0
  for path, text in items:
    if total >= limit:
      return
    total += len(text)
    yield path, text


class TextDomains(base.LocalBuilder, skip_registration=True):
  """Code, prose and chess; one builder config per Python version (its sources and docs)."""

  BUILDER_CONFIGS = [DEMO]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info({"path": tfds.features.Text(), "text": tfds.features.Text(),
                              "domain": tfds.features.Text()},
                             metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager):
    del dl_manager  # Local: this Python's files, and games played here.
    cfg = self.builder_config
    if cfg.chars_per_domain < 1:
      raise ValueError(f"text_domains config {cfg.name!r}: chars_per_domain="
                       f"{cfg.chars_per_domain} must be >= 1.")
    stockfish = engine_games.find_stockfish(cfg.stockfish_path)
    self.info.metadata["stockfish"] = chess_games.stockfish_name(stockfish)
    examples = list(_take(python_documents(cfg.max_file_chars), cfg.chars_per_domain))
    examples += list(_take(prose_documents(), cfg.chars_per_domain))
    examples += list(self._chess(cfg, stockfish))
    by_split = {"train": [], "validation": []}
    for path, text in examples:
      by_split[split_of(path)].append((path, text))
    return {split: self._generate_examples(rows) for split, rows in by_split.items()}

  def _chess(self, cfg, stockfish):
    """Games until the domain is full or chess_max_games are played. Each `generate` call
    starts its engine processes anew (seconds), so the first asks for enough games at ~250
    characters a game, and a second only if those fell short."""
    total, first = 0, 0
    while total < cfg.chars_per_domain and first < cfg.chess_max_games:
      want = -(-(cfg.chars_per_domain - total) // 250)
      count = min(max(want, 8), cfg.chess_max_games - first)
      for g in engine_games.generate(count, seed=cfg.chess_seed, settings=cfg.chess_settings,
                                     stockfish=stockfish, workers=cfg.workers, first=first):
        if total >= cfg.chars_per_domain:
          return
        text = transcript.truncate(g.text, cfg.chess_max_chars)
        total += len(text)
        yield f"chess/{g.index:05d}", text
      first += count

  def _generate_examples(self, rows):
    for path, text in rows:
      yield path, {"path": path, "text": text, "domain": path.split("/", 1)[0]}


def split_of(path: str) -> str:
  return "validation" if splits.hash_bucket(path) < VALIDATION_BUCKETS else "train"
