"""`text_domains`: Python code, English prose and chess games as one corpus of equal parts.

A corpus whose domains really differ, built with no download (the DEMO config; COLAB reads
downloaded files, below), for domain-specialisation demos (Monet's expert purging:
projects/monet/demo.py). One example per document; its `path` starts with its domain:
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

Builder configs (each a demo dataset of common/data/builders: 'text_domains', 'text_domains_colab'):
  DEMO   (<Python version>, e.g. py3_11_7): as above, ~200 kB a domain; downloads nothing.
  COLAB  (colab_<Python version>): ~8 MB a domain, for the Colab-size Monet
         (projects/monet/configs/domains_demo.py:colab): stdlib files of up to 128 kB, and prose
         and chess that the pydoc topics and a Colab's Stockfish cannot supply in that amount,
         read from manual_dir (config.data.manual_dir; projects/monet/colab.ipynb downloads both):
    <manual_dir>/wikitext-103-raw-v1/train-*.parquet
           the Hugging Face dataset Salesforce/wikitext (`snapshot_download(...,
           local_dir=<manual_dir>)` puts them there): its articles (wikitext103.articles), in
           file order (Wikitext's order mixes topics), as `prose/wikitext/<n>`;
    <manual_dir>/lichess/*.csv, *.pgn
           chess-GPT's Lichess transcripts, e.g. lichess_100mb.zip of the Hugging Face dataset
           adamkarvonen/chess_games unzipped, read, cut and filtered as chess_lichess does, in
           file order, as `chess/lichess/<n>`.
         Only as much is read as fills the domain. A missing input stops the build with one line
         that names it and where to get it.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import sysconfig

import tensorflow_datasets as tfds

from common.data.builders import base
from common.data.builders import splits
from common.data.builders.chess_games import chess_games
from common.data.builders.chess_games import engine_games
from common.data.builders.chess_games import lichess
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
  # Folders in manual_dir to read the prose and the chess from, instead of the pydoc topics and
  # games played here ('' for those): Wikitext-103's parquet files; Lichess CSV / PGN files.
  wikitext_dir: str = ""
  lichess_dir: str = ""


DEMO = TextDomainsConfig(name=pystdlib_text.python_config_name(),
                         description="~200 kB each of stdlib code, pydoc prose, chess games")
# 8 MB a domain: ~19 MB of training text, about 2.6 passes of domains_demo.py:colab's 3,000
# steps of 32 x 512 bytes. 128 kB files leave ~10.8 MB of the 3.11 stdlib to fill it from.
COLAB = TextDomainsConfig(
    name=f"colab_{pystdlib_text.python_config_name()}",
    description="~8 MB each of stdlib code, Wikitext-103 prose, Lichess games (manual_dir)",
    chars_per_domain=8_000_000, max_file_chars=128_000,
    wikitext_dir="wikitext-103-raw-v1", lichess_dir="lichess")

WIKITEXT_SOURCE = ("the Hugging Face dataset Salesforce/wikitext, folder wikitext-103-raw-v1; "
                   "projects/monet/colab.ipynb downloads it")
LICHESS_SOURCE = ("e.g. lichess_100mb.zip of the Hugging Face dataset adamkarvonen/chess_games, "
                  "unzipped; projects/monet/colab.ipynb downloads it")


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


def wikitext_documents(files):
  """(path, text) of the Wikitext-103 articles in these parquet files, in file order."""
  # Imported here: importing the module registers the TFDS name 'wikitext103'.
  from common.data.builders.wikitext103 import wikitext103  # pylint: disable=g-import-not-at-top
  for n, text in enumerate(wikitext103.articles(wikitext103.parquet_rows(files))):
    yield f"prose/wikitext/{n:06d}", text


def lichess_documents(folder: str, max_chars: int):
  """(path, text) of the Lichess transcripts in folder's CSV / PGN files, as chess_lichess
  reads them (cut to max_chars, games with other characters skipped), in file order."""
  texts = lichess.valid_transcripts(lichess.read_transcripts(folder), max_chars)
  for n, text in enumerate(texts):
    yield f"chess/lichess/{n:07d}", text


def _take(items, limit: int):
  """The leading items until their texts reach `limit` characters."""
  total = 0
  for path, text in items:
    if total >= limit:
      return
    total += len(text)
    yield path, text


class TextDomains(base.LocalBuilder, skip_registration=True):
  """Code, prose and chess; builder configs named for the Python version (its sources and docs)."""

  BUILDER_CONFIGS = [DEMO, COLAB]   # DEMO first: the default
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Only the configs with wikitext_dir / lichess_dir (COLAB) read manual_dir: put "
      f"Wikitext-103's train-*.parquet in <manual_dir>/<wikitext_dir>/ ({WIKITEXT_SOURCE}) and "
      f"Lichess *.csv or *.pgn files in <manual_dir>/<lichess_dir>/ ({LICHESS_SOURCE}).")

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info({"path": tfds.features.Text(), "text": tfds.features.Text(),
                              "domain": tfds.features.Text()},
                             metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager):
    cfg = self.builder_config
    if cfg.chars_per_domain < 1:
      raise ValueError(f"text_domains config {cfg.name!r}: chars_per_domain="
                       f"{cfg.chars_per_domain} must be >= 1.")
    # Every input is found before anything is read or played, so a missing one stops at once.
    manual = _manual_dir(dl_manager, cfg) if cfg.wikitext_dir or cfg.lichess_dir else ""
    if cfg.wikitext_dir:
      prose = wikitext_documents(_wikitext_files(os.path.join(manual, cfg.wikitext_dir), cfg))
    else:
      prose = prose_documents()
    if cfg.lichess_dir:
      chess = _take(lichess_documents(_lichess_dir(os.path.join(manual, cfg.lichess_dir), cfg),
                                      cfg.chess_max_chars), cfg.chars_per_domain)
    else:
      stockfish = engine_games.find_stockfish(cfg.stockfish_path)
      self.info.metadata["stockfish"] = chess_games.stockfish_name(stockfish)
      chess = self._chess(cfg, stockfish)
    examples = list(_take(python_documents(cfg.max_file_chars), cfg.chars_per_domain))
    examples += list(_take(prose, cfg.chars_per_domain))
    examples += list(chess)
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


def _manual_dir(dl_manager, cfg) -> str:
  try:
    return os.fspath(dl_manager.manual_dir)
  except AssertionError as e:   # TFDS: 'Manual directory X does not exist or is empty. ...'
    problem = str(e).splitlines()[0].split(". ")[0]
    raise FileNotFoundError(
        f"text_domains config {cfg.name!r}: {problem}; set config.data.manual_dir to a folder "
        f"holding {cfg.wikitext_dir}/ (Wikitext-103's train-*.parquet: {WIKITEXT_SOURCE}) and "
        f"{cfg.lichess_dir}/ (Lichess *.csv: {LICHESS_SOURCE}).") from e


def _wikitext_files(folder: str, cfg) -> list[str]:
  files = sorted(glob.glob(os.path.join(folder, "train-*.parquet")))
  if not files:
    raise FileNotFoundError(f"text_domains config {cfg.name!r}: no Wikitext-103 "
                            f"train-*.parquet in {folder}; put them there ({WIKITEXT_SOURCE}).")
  return files


def _lichess_dir(folder: str, cfg) -> str:
  try:
    lichess.source_files(folder)
  except FileNotFoundError as e:   # chess_lichess's own message is several lines
    raise FileNotFoundError(
        f"text_domains config {cfg.name!r}: no Lichess *.csv or *.pgn in {folder}; put "
        f"chess-GPT's transcripts there ({LICHESS_SOURCE}).") from e
  return folder


def split_of(path: str) -> str:
  return "validation" if splits.hash_bucket(path) < VALIDATION_BUCKETS else "train"
