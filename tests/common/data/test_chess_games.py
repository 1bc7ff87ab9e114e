"""Chess data: transcript format, the 'chess' tokenizer, the Stockfish and Lichess builders."""
import os

import chess
import numpy as np
import pytest
import tensorflow_datasets as tfds

from common.data import checks
from common.data import config
from common.data import tokenizers
from common.data.builders.chess_games import chess_games
from common.data.builders.chess_games import engine_games
from common.data.builders.chess_games import lichess
from common.data.builders.chess_games import transcript
from common.eval import board_state

# chess-GPT's meta.pkl (adamkarvonen/chess_llm_interpretability models/meta.pkl), written out.
META_STOI = {" ": 0, "#": 1, "+": 2, "-": 3, ".": 4, **{str(d): 5 + d for d in range(10)},
             ";": 15, "=": 16, "B": 17, "K": 18, "N": 19, "O": 20, "Q": 21, "R": 22,
             **{c: 23 + i for i, c in enumerate("abcdefgh")}, "x": 31}


def test_transcript_format_and_truncation():
  text = transcript.from_san(["e4", "e5", "Nf3", "Nc6", "Bb5"])
  assert text == ";1.e4 e5 2.Nf3 Nc6 3.Bb5"
  assert transcript.truncate(text, 16) == ";1.e4 e5 2.Nf3"   # never mid-move
  assert transcript.truncate(text, 100) == text
  board = chess.Board()
  moves = [board.push_san(s) for s in ("f3", "e5", "g4", "Qh4#")]
  assert transcript.from_moves(moves) == ";1.f3 e5 2.g4 Qh4#"


def test_chess_tokenizer_matches_chess_gpt_meta():
  tok = tokenizers.from_config(config.text_data_config("chess_games", tokenizer="chess"))
  assert isinstance(tok, tokenizers.ChessTokenizer) and tok.vocab_size == 32
  assert {c: i for i, c in enumerate(tokenizers.CHESS_VOCAB)} == META_STOI
  text = ";1.e4 e5 2.Nf3 Nc6 3.O-O exd4 4.e8=Q+ Kxe8#"
  ids = tok.encode(text)
  assert ids.dtype == np.int32 and list(ids[:3]) == [15, 6, 4]
  assert tok.decode(ids) == text and tok.encode(text.encode()).tolist() == ids.tolist()
  assert tok.eos_id is None and tok.pad_id == META_STOI[" "]
  with pytest.raises(ValueError, match=r"\['\{', '\}'\] \(first at index 6.*not in the chess vocabulary"):
    tok.encode(";1.e4 {bad}")
  with pytest.raises(ValueError, match="outside the chess vocabulary"):
    tok.decode([3, 32])


@pytest.mark.parametrize("overrides, match", [
    ({"task_format": "span_corruption"}, "task_format"),
    ({"extra_ids": 2}, "extra_ids"),
])
def test_chess_tokenizer_config_checks(overrides, match):
  cfg = config.text_data_config("chess_games", tokenizer="chess", **overrides)
  with pytest.raises(ValueError, match=match):
    checks._validate_text(cfg)  # pylint: disable=protected-access


def test_missing_stockfish_names_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="apt-get install stockfish.*STOCKFISH_PATH"):
    engine_games.find_stockfish(str(tmp_path / "no_stockfish"))


@pytest.fixture(scope="module")
def stockfish():
  # No skip: scripts/setup.sh installs Debian's stockfish, and a missing engine should fail
  # loudly here with the error that names the fix.
  return engine_games.find_stockfish()


TINY = dict(num_games=8, max_plies=24, nodes_choices=(1, 8), max_chars=60, workers=1,
            validation_fraction=0.25)


def _build(root, **overrides):
  cfg = chess_games.ChessGamesConfig(name="tiny", **dict(TINY, **overrides))
  builder = chess_games.ChessGames(data_dir=str(root), config=cfg)
  builder.download_and_prepare(file_format="array_record")
  return {split: sorted((int(ex["game_index"]), ex["text"].decode())
                        for ex in builder.as_data_source(split))
          for split in ("train", "validation")}


@pytest.fixture(scope="module")
def tiny_build(stockfish, tmp_path_factory):
  del stockfish
  return _build(tmp_path_factory.mktemp("chess"))


def test_builder_games_are_valid_transcripts(tiny_build):
  rows = tiny_build["train"] + tiny_build["validation"]
  assert sorted(i for i, _ in rows) == list(range(TINY["num_games"]))
  assert tiny_build["validation"] and tiny_build["train"]
  for index, text in rows:
    assert chess_games.split_of(0, index, 0.25) in ("train", "validation")
    assert text.startswith(";1.") and len(text) <= TINY["max_chars"] and "  " not in text
    tokenizers.ChessTokenizer().encode(text)
    positions, _ = board_state.game_features(text)   # every move legal
    assert len(positions) >= 1


def test_builder_is_reproducible_and_seeded(tiny_build, tmp_path):
  assert _build(tmp_path / "again") == tiny_build
  assert _build(tmp_path / "seed1", seed=1) != tiny_build


def test_generation_does_not_depend_on_worker_count(stockfish):
  settings = engine_games.EngineSettings(nodes_choices=(1, 8), max_plies=16)
  one = engine_games.generate(4, seed=3, settings=settings, stockfish=stockfish, workers=1,
                              games_per_task=2)
  two = engine_games.generate(4, seed=3, settings=settings, stockfish=stockfish, workers=2,
                              games_per_task=2)
  assert one == two and len({g.text for g in one}) > 1


def _lichess(root, manual_dir):
  builder = lichess.ChessLichess(data_dir=str(root))
  builder.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return sorted(ex["text"].decode() for split in ("train", "validation")
                for ex in builder.as_data_source(split))


def test_lichess_reads_csv_and_pgn(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  # 40 filler games so that both splits get some (10% validation).
  filler = "".join(f"1400,;1.a3 a6 {2 + i}.h3\n" for i in range(40))
  (manual / "a.csv").write_text("WhiteElo,transcript\n1500,1.e4 e5 2.Nf3\n1600,;1.d4 d5\n"
                                "1700,1.e4 {comment}\n" + filler)
  (manual / "b.pgn").write_text(
      '[Event "x"]\n[Result "1-0"]\n\n1. f3 e5 2. g4 Qh4# 0-1\n\n'
      '[Event "y"]\n[Variant "Chess960"]\n[FEN "bbqnnrkr/pppppppp/8/8/8/8/PPPPPPPP/BBQNNRKR w '
      'HFhf - 0 1"]\n\n1. e4 e5 *\n')
  texts = _lichess(tmp_path / "data", manual)
  assert len(texts) == 43 and len(set(texts)) == 43
  assert {";1.d4 d5", ";1.e4 e5 2.Nf3", ";1.f3 e5 2.g4 Qh4#"} < set(texts)


def test_lichess_without_files_says_what_to_put_where(tmp_path):
  empty = tmp_path / "manual"
  empty.mkdir()
  (empty / "notes.txt").write_text("nothing here")
  with pytest.raises(FileNotFoundError, match=f"(?s)no .*csv.*in {os.fspath(empty)}.*'transcript' column"):
    _lichess(tmp_path / "data", empty)
  with pytest.raises(FileNotFoundError, match="(?s)does not exist or is empty.*adamkarvonen"):
    _lichess(tmp_path / "data", tmp_path / "absent")


def test_lm_stream_of_lichess_games_from_config_manual_dir(tmp_path):
  """config.data.manual_dir reaches the builder; 'chess' LM streams need no EOS token."""
  from common.data import pipeline
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "games.csv").write_text(
      "transcript\n" + "".join(f"1.e4 e5 {2 + i % 7}.Nf3 Nc6\n" for i in range(40)))
  cfg = config.text_data_config("chess_lichess", tokenizer="chess", seq_len=15,
                                data_dir=str(tmp_path / "data"), manual_dir=str(manual))
  batch = next(pipeline.train_iterator(cfg, seed=0, process_index=0, process_count=1,
                                       batch_size=4))
  assert batch["inputs"].shape == (4, 15) and batch["inputs"].max() < 32
  np.testing.assert_array_equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])
  tok = tokenizers.ChessTokenizer()
  stream = "".join(tok.decode(row) for row in batch["inputs"])
  # Games follow each other directly: every game starts with ';' and nothing separates them.
  assert ";1.e4 e5" in stream and all(part.startswith("1.e4 e5 ") for part in stream.split(";")[1:-1])
