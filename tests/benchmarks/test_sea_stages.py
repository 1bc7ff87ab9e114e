"""benchmarks/sea_stages.py times every stage, on both paths, at a tiny length."""
import pytest

from benchmarks import sea_stages


@pytest.mark.parametrize("impl", ["auto", "reference"])  # shared lists (CPU) / per-head lists
def test_every_stage_is_timed(impl, capsys):
  sea_stages.main(["--lengths", "64", "--repeats", "1", "--attention_impl", impl])
  table = capsys.readouterr().out
  rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| ")][1:]
  assert [r[0].strip() for r in rows] == ["performer", "encoder", "decoder", "decoder+bwd",
                                          "top-k", "lists", "attention", "layer", "dense"]
  assert all(float(r[1]) > 0 for r in rows)
