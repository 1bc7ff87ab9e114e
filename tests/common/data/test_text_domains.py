"""The 'text_domains' corpus: three domains, each filled to its byte budget, split by document;
its COLAB config reads the prose and chess from manual_dir."""
import collections
import os

import pytest
import tensorflow_datasets as tfds

from common.data import builders
from common.data import tokenizers
from common.data.builders import base
from common.data.builders.chess_games import engine_games
from common.data.builders.text_domains import text_domains
from common.eval import board_state

BUDGET = 12_000


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  engine_games.find_stockfish()   # no skip: scripts/setup.sh installs it
  cfg = text_domains.TextDomainsConfig(
      name="tiny", chars_per_domain=BUDGET, max_file_chars=4_000, workers=1,
      chess_settings=engine_games.EngineSettings(nodes_choices=(1, 4), max_plies=16))
  builder = text_domains.TextDomains(data_dir=str(tmp_path_factory.mktemp("td")), config=cfg)
  builder.download_and_prepare(file_format="array_record")
  return {split: [{k: v.decode() for k, v in ex.items()} for ex in builder.as_data_source(split)]
          for split in ("train", "validation")}


def test_domains_fill_their_budget_and_split_by_document(built):
  rows = built["train"] + built["validation"]
  chars = collections.Counter()
  for split, examples in built.items():
    for ex in examples:
      assert ex["path"].split("/", 1)[0] == ex["domain"] and ex["domain"] in text_domains.DOMAINS
      assert text_domains.split_of(ex["path"]) == split
      chars[ex["domain"]] += len(ex["text"])
  assert len({r["path"] for r in rows}) == len(rows)
  # Each domain reaches its budget, and stops at the document that crosses it.
  for domain in text_domains.DOMAINS:
    docs = [r for r in rows if r["domain"] == domain]
    longest = max(len(r["text"]) for r in docs)
    assert BUDGET <= chars[domain] < BUDGET + longest, (domain, chars[domain])
  assert all(len(r["text"]) <= 4_000 for r in rows if r["domain"] == "python")
  assert any("def " in r["text"] or "import " in r["text"] for r in rows if r["domain"] == "python")
  assert all(r["path"].startswith("prose/") and " the " in r["text"]
             for r in rows if r["domain"] == "prose")
  for r in rows:
    if r["domain"] == "chess":
      tokenizers.ChessTokenizer().encode(r["text"])
      assert len(board_state.game_features(r["text"])[0]) >= 1   # legal games
  assert built["validation"] and built["train"]


# The COLAB config's inputs, faked: Wikitext rows (one per line, '' for a blank line) and a
# chess-GPT CSV, in the folders of a manual_dir.
ARTICLES = [[f" = Article {i} = \n", "", f" Article {i} is about the topic , in words . \n" * 4, ""]
            for i in range(12)]
GAMES = [f"1.e4 e5 2.Nf3 Nc6 3.Bb5 a6 4.Ba4 Nf6 5.O-O Be7 6.Re1 b5 {i + 7}.Bb3" for i in range(90)]
SMALL = 2_000


def _colab_builder(tmp_path, *, wikitext=True, lichess=True, manual="manual"):
  root = tmp_path / "manual"
  if wikitext:
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    (root / "wt").mkdir(parents=True)
    rows = [row for article in ARTICLES for row in article]
    pq.write_table(pa.table({"text": rows}), root / "wt" / "train-00000-of-00001.parquet")
  if lichess:
    (root / "li").mkdir(parents=True)
    # The second game has characters outside chess-GPT's 32: skipped, as chess_lichess does.
    lines = ["WhiteElo,transcript", f"1500,{GAMES[0]}", "1500,;1.e4 {book} e5"]
    (root / "li" / "games.csv").write_text("\n".join(lines + [f"1600,{g}" for g in GAMES[1:]]))
  cfg = text_domains.TextDomainsConfig(name="tiny_colab", chars_per_domain=SMALL,
                                       max_file_chars=4_000, wikitext_dir="wt", lichess_dir="li")
  builder = text_domains.TextDomains(data_dir=str(tmp_path / "data"), config=cfg)
  return builder, tfds.download.DownloadConfig(manual_dir=str(tmp_path / manual))


def test_colab_config_reads_wikitext_and_lichess_from_manual_dir(tmp_path, monkeypatch):
  def no_engine(*args):
    raise AssertionError("the COLAB config plays no games")
  monkeypatch.setattr(engine_games, "find_stockfish", no_engine)
  builder, download = _colab_builder(tmp_path)
  builder.download_and_prepare(file_format="array_record", download_config=download)
  rows = {split: [{k: v.decode() for k, v in ex.items()} for ex in builder.as_data_source(split)]
          for split in ("train", "validation")}
  assert all(text_domains.split_of(r["path"]) == s for s, rs in rows.items() for r in rs)
  every = sorted(rows["train"] + rows["validation"], key=lambda r: r["path"])
  by_domain = {d: [r for r in every if r["domain"] == d] for d in text_domains.DOMAINS}
  # Prose: whole articles in file order, until the budget is reached.
  prose = by_domain["prose"]
  assert [r["path"] for r in prose] == [f"prose/wikitext/{n:06d}" for n in range(len(prose))]
  assert prose[0]["text"] == " = Article 0 = \n \n" + ARTICLES[0][2] + " \n"
  assert SMALL <= sum(len(r["text"]) for r in prose) < SMALL + max(len(r["text"]) for r in prose)
  assert len(prose) < len(ARTICLES)
  # Chess: the CSV's transcripts with ';' added, the one with other characters skipped.
  chess = by_domain["chess"]
  assert [r["text"] for r in chess] == [";" + g for g in GAMES[:len(chess)]]
  assert [r["path"] for r in chess] == [f"chess/lichess/{n:07d}" for n in range(len(chess))]
  assert SMALL <= sum(len(r["text"]) for r in chess) < SMALL + max(len(r["text"]) for r in chess)
  assert len(chess) < len(GAMES)
  assert by_domain["python"] and all(r["path"].startswith("python/") for r in by_domain["python"])


@pytest.mark.parametrize("missing, message", [
    ("manual", r"directory .*/elsewhere does not exist or is empty; set config.data.manual_dir"),
    ("wikitext", r"no Wikitext-103 train-\*.parquet in .*manual/wt; .*Salesforce/wikitext"),
    ("lichess", r"no Lichess \*.csv or \*.pgn in .*manual/li; .*adamkarvonen/chess_games"),
])
def test_colab_config_names_a_missing_input_in_one_line(tmp_path, missing, message):
  builder, download = _colab_builder(tmp_path, wikitext=missing != "wikitext",
                                     lichess=missing != "lichess",
                                     manual="elsewhere" if missing == "manual" else "manual")
  with pytest.raises(FileNotFoundError, match=message) as info:
    builder.download_and_prepare(file_format="array_record", download_config=download)
  assert "\n" not in str(info.value) and "tiny_colab" in str(info.value)


def test_registry_names_each_config_and_its_folder(tmp_path):
  """'text_domains' stays the DEMO config (the README's numbers); 'text_domains_colab' builds
  COLAB into the same builder's folder."""
  demo, colab = builders.get("text_domains"), builders.get("text_domains_colab")
  assert demo.builder_config() is text_domains.DEMO is text_domains.TextDomains.BUILDER_CONFIGS[0]
  assert colab.builder_config() is text_domains.COLAB
  d, c = text_domains.DEMO, text_domains.COLAB
  assert (d.chars_per_domain, d.max_file_chars, d.wikitext_dir, d.lichess_dir) == (
      200_000, 16_000, "", "")
  assert (c.chars_per_domain, c.wikitext_dir, c.lichess_dir) == (
      8_000_000, "wikitext-103-raw-v1", "lichess")
  root = str(tmp_path)
  assert base._version_dir(demo, root) == os.path.join(root, "text_domains", d.name, "1.0.0")
  assert base._version_dir(colab, root) == os.path.join(root, "text_domains", c.name, "1.0.0")


def test_registry_build_without_its_inputs_stops_with_that_line(tmp_path, caplog):
  """A missing input is not damage: load_builder neither deletes and rebuilds nor wraps the line."""
  caplog.set_level("WARNING")
  line = r"^text_domains config 'colab_.*set config.data.manual_dir"
  with pytest.raises(FileNotFoundError, match=line):
    base.load_builder(builders.get("text_domains_colab"), str(tmp_path / "data"),
                      manual_dir=str(tmp_path / "nowhere"))
  assert "rebuilding" not in caplog.text
