"""The project's notebook runs end to end at smoke settings and produces its figures."""
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[3]
GOLDEN = ROOT.parent / "shared" / "golden" / "stvit" / "tiny_s0"


def test_colab_notebook_executes(run_colab):
  summary = run_colab("svit", figures=("super_tokens.png", "training_loss.png"))
  assert 0.0 <= summary["accuracy"]["svit"] <= 1.0
  assert summary["stage0_grid"] == [2, 2]  # 32x32 input, stride-4 stem, 4x4-pixel super tokens
  if GOLDEN.is_dir():
    assert summary["golden_max_error"] <= 2e-5
