"""The project's notebook runs end to end at smoke settings and produces its figures."""
from tests import golden
from tests.projects.image_colab import check_colab_setting


def test_colab_notebook_executes(run_colab):
  summary = run_colab("svit", figures=("super_tokens.png", "training_loss.png"))
  assert 0.0 <= summary["accuracy"]["svit"] <= 1.0
  assert summary["stage0_grid"] == [2, 2]  # 32x32 input, stride-4 stem, 4x4-pixel super tokens
  if golden.path("stvit/tiny_s0").is_dir():  # the notebook's optional golden cell
    assert summary["golden_max_error"] <= 2e-5


def test_colab_setting_resolves_without_download(monkeypatch):
  """The notebook's `colab` setting: configs/mnist_demo.py:{svit,vit},colab validates (task checks
  included) and builds its models' shapes without touching the data, names the downloadable
  Imagenette ('tfds:imagenette/160px-v2', prepared in-process only in that setting) and keeps
  the demo's comparison: SViT against a ViT of about its size."""
  arch = check_colab_setting("svit", monkeypatch)
  # 128 px, stride-4 stem: 32x32 and 16x16 maps, 4x4 super tokens in each.
  assert tuple(arch.stoken_size[:2]) == ((8, 8), (4, 4))
