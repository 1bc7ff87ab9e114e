"""The 'text_domains' corpus: three domains, each filled to its byte budget, split by document."""
import collections

import pytest

from common.data import tokenizers
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
