"""The project's notebook runs end to end at smoke settings and produces its figures."""
from tests import golden


def test_colab_notebook_executes(run_colab):
  summary = run_colab("svit", figures=("super_tokens.png", "training_loss.png"))
  assert 0.0 <= summary["accuracy"]["svit"] <= 1.0
  assert summary["stage0_grid"] == [2, 2]  # 32x32 input, stride-4 stem, 4x4-pixel super tokens
  if golden.path("stvit/tiny_s0").is_dir():  # the notebook's optional golden cell
    assert summary["golden_max_error"] <= 2e-5
