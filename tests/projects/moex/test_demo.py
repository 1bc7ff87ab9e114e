"""The moex demo's chess_long mode: which runs it trains and how its rows aggregate seeds."""
from projects.moex import demo


def test_chess_long_trains_each_kind_and_seed_once_at_context_512(monkeypatch, tmp_path):
  seen = []

  def fake_train(c, workdir):
    seen.append((workdir, c.seed, c.model.ffn, c.data.seq_len, c.model.max_len,
                 c.eval.board_games))
    return {"eval/loss/validation/ce": 1.0 + c.seed, "eval/board_state/coverage": 0.1,
            "eval/board_state/coverage_occurring": 0.2, "eval/board_state/reconstruction": 0.5}

  monkeypatch.setattr(demo.demo_runs, "train_or_reuse", fake_train)
  rows = demo.chess_long(str(tmp_path))
  assert len(seen) == len(demo.LONG_RUNS) * len(demo.SEEDS)
  assert len({w for w, *_ in seen}) == len(seen)
  assert {(s, L, m, g) for _, s, _, L, m, g in seen} == {(s, 512, 512, 320) for s in demo.SEEDS}
  assert {f for _, _, f, *_ in seen} == {demo.RUNS[n][0] for n in demo.LONG_RUNS}
  assert len(rows) == len(demo.LONG_RUNS) * len(demo.CHESS_METRICS)
  ce = rows[0]
  assert ce["metric"] == "validation CE (nats/char)" and ce["paper"] == "0.213"
  assert ce["measured"] == "2.000 ± 1.000" and "context 512, 3 seed(s)" in ce["experiment"]
  assert rows[2]["paper"] == "n/r"   # the occurring-BSP average has no paper number
