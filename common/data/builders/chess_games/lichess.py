"""`chess_lichess`: the paper's Lichess games, read from files you place in manual_dir.

MoE-X trains on chess-GPT's Lichess data (Karvonen: the `adamkarvonen/chess_games` dataset on
the Hugging Face Hub, e.g. `lichess_6gb.zip`, a CSV with a 'transcript' column; the probe data of
chess_llm_interpretability is `lichess_train.csv`/`lichess_test.csv` in the same layout). This
builder downloads nothing. It reads, in sorted file order, every
  *.csv  with a 'transcript' column (';1.e4 e5 ...' or '1.e4 e5 ...'; ';' is added if absent),
  *.pgn  standard PGN (e.g. a database.lichess.org monthly file, decompressed): the main line of
         each standard-start game becomes a transcript; other variants / FEN starts are skipped,
from `<data_dir>/downloads/manual` (TFDS's manual_dir; or pass a DownloadConfig with another
one to `download_and_prepare`). Transcripts are cut at a move boundary to `max_chars`, and rows
with characters outside chess-GPT's 32 are skipped (counted in the log). Split by game as in
chess_games: md5("lichess:<n>") of the n-th game read, 10% validation.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import os
import sys

import tensorflow_datasets as tfds

from common.data import tokenizers
from common.data.builders import base
from common.data.builders import splits
from common.data.builders.chess_games import transcript

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
Put chess-GPT's Lichess games in the manual directory (default <data_dir>/downloads/manual):
  * CSV files with a 'transcript' column, e.g. lichess_6gb.csv unzipped from the Hugging Face
    dataset adamkarvonen/chess_games (files lichess_6gb.zip, lichess_100mb.zip), or
    lichess_train.csv / lichess_test.csv from adamkarvonen/chess_llm_interpretability; or
  * PGN files (*.pgn, decompressed), e.g. from https://database.lichess.org.
"""


@dataclasses.dataclass(eq=False)
class LichessConfig(tfds.core.BuilderConfig):
  max_chars: int = 1023
  max_games: int = 0                    # 0: every game found
  validation_fraction: float = 0.1


def _csv_transcripts(path: str):
  csv.field_size_limit(sys.maxsize)  # lichess_6gb rows are long
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    if "transcript" not in (reader.fieldnames or ()):
      raise ValueError(f"{path} has no 'transcript' column (columns: {reader.fieldnames}); "
                       "chess_lichess reads chess-GPT CSVs with one transcript per row.")
    for row in reader:
      text = row["transcript"].strip()
      yield text if text.startswith(transcript.PREFIX) else transcript.PREFIX + text


def _pgn_transcripts(path: str):
  import chess.pgn  # pylint: disable=g-import-not-at-top
  with open(path, encoding="utf-8", errors="replace") as f:
    while (game := chess.pgn.read_game(f)) is not None:
      headers = game.headers
      if headers.get("Variant", "Standard") != "Standard" or "FEN" in headers or game.errors:
        continue
      moves = list(game.mainline_moves())
      if moves:
        yield transcript.from_moves(moves)


def source_files(manual_dir: str) -> list[str]:
  """The *.csv and *.pgn files of manual_dir, sorted; raises naming the dir if there are none."""
  names = sorted(n for n in os.listdir(manual_dir) if n.lower().endswith((".csv", ".pgn")))
  if not names:
    raise FileNotFoundError(f"chess_lichess: no *.csv or *.pgn file in {manual_dir}.\n"
                            + INSTRUCTIONS)
  return [os.path.join(manual_dir, n) for n in names]


def read_transcripts(manual_dir: str):
  """Every transcript in manual_dir's *.csv and *.pgn files, in sorted file order."""
  for path in source_files(manual_dir):
    yield from (_csv_transcripts(path) if path.lower().endswith(".csv")
                else _pgn_transcripts(path))


class ChessLichess(base.LocalBuilder, skip_registration=True):
  """Lichess games from manual_dir as chess-GPT transcripts."""

  BUILDER_CONFIGS = [LichessConfig(name="default", description="all games in manual_dir")]
  MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info({"text": tfds.features.Text()})

  def _split_generators(self, dl_manager):
    try:
      manual_dir = os.fspath(dl_manager.manual_dir)
    except AssertionError as e:  # TFDS: the directory is missing or empty
      raise FileNotFoundError(f"chess_lichess needs the Lichess games on disk: {e}") from e
    source_files(manual_dir)  # fail now, not halfway through generation
    # Each split re-reads the files (two passes, constant memory: lichess_6gb is 6 GB).
    return {split: self._generate_examples(manual_dir, split) for split in ("train", "validation")}

  def _generate_examples(self, manual_dir, split):
    cfg = self.builder_config
    cut = round(cfg.validation_fraction * 1000)
    texts = valid_transcripts(read_transcripts(manual_dir), cfg.max_chars, cfg.max_games)
    for n, text in enumerate(texts):
      if ("validation" if splits.hash_bucket(f"lichess:{n}") < cut else "train") == split:
        yield n, {"text": text}


def valid_transcripts(texts, max_chars: int, max_games: int = 0):
  """The transcripts cut at a move boundary to max_chars, without those holding characters
  outside chess-GPT's 32 (counted in the log); at most max_games of them (0: all)."""
  tok, kept, skipped = tokenizers.ChessTokenizer(), 0, 0
  for text in texts:
    if max_games and kept >= max_games:
      break
    text = transcript.truncate(text, max_chars)
    try:
      tok.encode(text)
    except ValueError:
      skipped += 1
      continue
    kept += 1
    yield text
  if skipped:
    log.warning("Lichess: skipped %d transcripts with characters outside the chess "
                "vocabulary.", skipped)
