"""The project's notebook runs end to end at smoke settings and produces its figures."""
from tests import golden


def test_colab_notebook_executes(run_colab):
  summary = run_colab("biformer", figures=("routed_regions.png", "training_loss.png"))
  assert 0.0 <= summary["accuracy"]["biformer"] <= 1.0
  assert summary["n_win"] == 4 and summary["routed_per_query"] == 4  # top-4 of 16 regions
  if golden.path("biformer/tiny_s0").is_dir():  # the notebook's optional golden cell
    assert summary["golden_max_error"] <= 2e-5
