"""benchmarks/sea_stages.py runs both paths at a tiny length and times every stage."""
import pytest

from benchmarks import sea_stages


@pytest.mark.parametrize("impl", ["auto", "reference"])  # shared lists (CPU) / per-head lists
def test_every_stage_is_timed(impl, capsys):
  times = sea_stages.stage_times(128, repeats=1, impl=impl)
  assert list(times) == ["performer", "encoder", "decoder", "top-k", "lists", "attention",
                         "layer", "dense"]
  assert all(ms > 0 for ms in times.values())
  sea_stages.main(["--lengths", "64", "--repeats", "1", "--attention_impl", impl])
  assert "| top-k |" in capsys.readouterr().out
