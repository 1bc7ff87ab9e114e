"""chess-GPT's game transcript format: ';1.e4 e5 2.Nf3 Nc6 3.Bb5 a6'.

The format of Karvonen's chess-GPT data (adamkarvonen/chess_llm_interpretability,
`lichess_data_filtering.ipynb`, which prepends ';' to Lichess transcripts): a ';' first, then
SAN moves (with '+', '#', '=Q', 'O-O') separated by single spaces, each White move prefixed by
its number and a '.' with no space after it. No result, no comments, no clock times. Every
character is one of the 32 of `common.data.tokenizers.CHESS_VOCAB`.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import chess

PREFIX = ";"


def from_san(moves: Iterable[str]) -> str:
  """';1.e4 e5 2.Nf3' from SAN moves played from the standard starting position."""
  parts = []
  for ply, san in enumerate(moves):
    parts.append(f"{ply // 2 + 1}.{san}" if ply % 2 == 0 else san)
  return PREFIX + " ".join(parts)


def from_moves(moves: Iterable[chess.Move], board: chess.Board | None = None) -> str:
  """The transcript of `moves` played from `board` (default: the starting position)."""
  board = board.copy() if board is not None else chess.Board()
  if board.fen() != chess.STARTING_FEN:
    raise ValueError("chess-GPT transcripts start from the standard position; got a game from "
                     f"FEN {board.fen()!r}.")
  sans = []
  for move in moves:
    sans.append(board.san(move))
    board.push(move)
  return from_san(sans)


def truncate(text: str, max_chars: int) -> str:
  """`text` cut to at most `max_chars` characters at a move boundary (never mid-move)."""
  if max_chars < len(PREFIX) + 4:
    raise ValueError(f"max_chars={max_chars} cannot hold a single move (';1.e4' is 5 chars).")
  if len(text) <= max_chars:
    return text
  cut = text.rfind(" ", 0, max_chars + 1)
  return text[:cut] if cut > 0 else text[:max_chars]


def san_tokens(text: str) -> Iterator[str]:
  """The SAN moves of a transcript, in order ('' for a move number with its move cut off)."""
  if not text.startswith(PREFIX):
    raise ValueError(f"a chess-GPT transcript starts with {PREFIX!r}, like ';1.e4 e5 2.Nf3'; "
                     f"got {text[:30]!r}.")
  for token in text[len(PREFIX):].split(" "):
    yield token.split(".", 1)[1] if "." in token else token
