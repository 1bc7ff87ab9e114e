"""The Monet demo's results rows from its runs' records (no training: synthetic records)."""
from projects.monet import demo

DOMAINS = ("python", "prose", "chess")


def _monet(ce, chess_delta):
  rows = [dict(target=d, base={n: 2.0 for n in DOMAINS}, purged_fraction=0.1,
               delta_target=chess_delta if d == "chess" else 0.01, delta_others=0.0,
               random_delta_target=0.02, random_delta_others=0.01) for d in DOMAINS]
  return dict(final={"eval/loss/validation/ce": ce}, rows=rows)


def test_domain_rows_report_seeds_dense_purges_and_the_sweep():
  monet = [_monet(2.3, 1.0), _monet(2.5, 2.0)]
  dense = [dict(final={"eval/loss/validation/ce": c}, losses={d: 1.5 for d in DOMAINS})
           for c in (2.2, 2.4)]
  sweep = {16: _monet(2.6, 0.4), 64: _monet(2.4, 0.7)}
  rows = demo.domain_rows(monet, dense, sweep, n_seeds=2, experts=32)
  assert [r["project"] for r in rows] == ["monet"] * 6
  assert rows[0]["measured"] == "2.400 ± 0.100 / 2.300 ± 0.100"
  assert "(E = 32)" in rows[0]["experiment"] and "2 seeds" in rows[0]["experiment"]
  assert rows[1]["measured"].endswith("1.500 ± 0.000 / 1.500 ± 0.000 / 1.500 ± 0.000")
  assert [r["experiment"].split("'")[1] for r in rows[2:5]] == list(DOMAINS)
  assert rows[4]["measured"].startswith("1.500 ± 0.500 / 0.000 ± 0.000 [0.020 ± 0.000")
  # Selectivity per E: mean over targets of delta_target - delta_others, E in ascending order.
  assert rows[5]["experiment"].endswith("16 / 32 / 64")
  assert rows[5]["measured"].startswith("0.140 (10.0%) / 0.507 ± 0.167 (10.0%) / 0.240")
