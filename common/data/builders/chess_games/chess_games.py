"""`chess_games`: Stockfish self-play games as chess-GPT transcripts (';1.e4 e5 2.Nf3 ...').

A stand-in, built locally with no download, for the Lichess data of chess-GPT (Karvonen 2024)
used by MoE-X; `chess_lichess` (lichess.py) reads the real games from manual_dir.

Each game: a random opening of 0..`random_opening_plies` plies, then Stockfish with a node budget
drawn per side from `nodes_choices`, replaced at each ply by a uniformly random legal move with
a per-game probability drawn from [0, `max_random_move_prob`]; it stops at mate/stalemate/
insufficient material or after `max_plies` plies. The text is cut at a move boundary to at most
`max_chars` characters. Everything is fixed by `seed` and the game index (engine_games.py), but
the moves also depend on the Stockfish version (recorded in the dataset's metadata): compare
builds made with the same version.

Splits by game: `validation` holds the games whose md5("<seed>:<index>") bucket is below
`validation_fraction` (of 1,000 buckets); `train` the rest.
Features: `text`, `game_index`, `white_nodes`, `black_nodes` (the node budgets: a skill label).
"""
from __future__ import annotations

import dataclasses

import chess.engine
import numpy as np
import tensorflow_datasets as tfds

from common.data.builders import base
from common.data.builders import splits
from common.data.builders.chess_games import engine_games
from common.data.builders.chess_games import transcript


@dataclasses.dataclass(eq=False)
class ChessGamesConfig(tfds.core.BuilderConfig):
  """Dataset size and engine settings (the defaults build in about 2 minutes on 2 cores)."""
  num_games: int = 3000
  seed: int = 0
  max_chars: int = 1023                 # chess-GPT's context (MoE-X: 1023 characters)
  validation_fraction: float = 0.1
  nodes_choices: tuple[int, ...] = (1, 16, 128, 512)
  max_random_move_prob: float = 0.2
  random_opening_plies: int = 4
  max_plies: int = 60
  stockfish_path: str = ""              # '' -> $STOCKFISH_PATH, PATH, /usr/games/stockfish
  workers: int = 0                      # engine processes; 0 -> one per CPU (results identical)

  def engine_settings(self) -> engine_games.EngineSettings:
    return engine_games.EngineSettings(
        nodes_choices=tuple(self.nodes_choices), max_random_move_prob=self.max_random_move_prob,
        random_opening_plies=self.random_opening_plies, max_plies=self.max_plies)


DEMO = ChessGamesConfig(name="demo", description="3,000 Stockfish games of up to 60 plies")


def split_of(seed: int, index: int, validation_fraction: float) -> str:
  bucket = splits.hash_bucket(f"{seed}:{index}")
  return "validation" if bucket < round(validation_fraction * 1000) else "train"


def stockfish_name(path: str) -> str:
  engine = chess.engine.SimpleEngine.popen_uci(path)
  try:
    return engine.id.get("name", "unknown")
  finally:
    engine.quit()


class ChessGames(base.LocalBuilder, skip_registration=True):
  """Engine-generated chess games; the first builder config is the registered demo."""

  BUILDER_CONFIGS = [DEMO]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info(
        {"text": tfds.features.Text(),
         "game_index": tfds.features.Scalar(dtype=np.int32),
         "white_nodes": tfds.features.Scalar(dtype=np.int32),
         "black_nodes": tfds.features.Scalar(dtype=np.int32)},
        metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager):
    del dl_manager  # Generated locally.
    cfg = self.builder_config
    if cfg.num_games < 1 or not 0 < cfg.validation_fraction < 1:
      raise ValueError(f"chess_games config {cfg.name!r}: num_games={cfg.num_games} must be >= 1 "
                       f"and validation_fraction={cfg.validation_fraction} in (0, 1).")
    transcript.truncate(";1.e4", cfg.max_chars)  # validates max_chars before the slow part
    path = engine_games.find_stockfish(cfg.stockfish_path)
    self.info.metadata["stockfish"] = stockfish_name(path)
    games = engine_games.generate(cfg.num_games, seed=cfg.seed, settings=cfg.engine_settings(),
                                  stockfish=path, workers=cfg.workers)
    by_split = {"train": [], "validation": []}
    for g in games:
      by_split[split_of(cfg.seed, g.index, cfg.validation_fraction)].append(g)
    return {split: self._generate_examples(gs, cfg.max_chars) for split, gs in by_split.items()}

  def _generate_examples(self, games, max_chars):
    for g in games:
      yield g.index, {"text": transcript.truncate(g.text, max_chars), "game_index": g.index,
                      "white_nodes": g.white_nodes, "black_nodes": g.black_nodes}
