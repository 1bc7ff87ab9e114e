"""The project's notebook runs end to end at smoke settings and produces its figures."""
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[3]
GOLDEN = ROOT.parent / "shared" / "golden" / "biformer" / "tiny_s0"


def test_colab_notebook_executes(run_colab):
  summary = run_colab("biformer", figures=("routed_regions.png", "training_loss.png"))
  assert 0.0 <= summary["accuracy"]["biformer"] <= 1.0
  assert summary["n_win"] == 4 and summary["routed_per_query"] == 4  # top-4 of 16 regions
  if GOLDEN.is_dir():
    assert summary["golden_max_error"] <= 2e-5
