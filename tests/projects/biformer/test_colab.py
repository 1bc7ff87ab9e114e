"""The project's notebook runs end to end at smoke settings and produces its figures."""
from tests import golden
from tests.projects.image_colab import check_colab_setting


def test_colab_notebook_executes(run_colab):
  summary = run_colab("biformer", figures=("routed_regions.png", "training_loss.png"))
  assert 0.0 <= summary["accuracy"]["biformer"] <= 1.0
  assert summary["n_win"] == 4 and summary["routed_per_query"] == 4  # top-4 of 16 regions
  if golden.path("biformer/tiny_s0").is_dir():  # the notebook's optional golden cell
    assert summary["golden_max_error"] <= 2e-5


def test_colab_setting_resolves_without_download(monkeypatch):
  """The notebook's `colab` setting: configs/mnist_demo.py:{biformer,vit},colab validates (task
  checks included) and builds its models' shapes without touching the data, names the
  downloadable Imagenette ('tfds:imagenette/160px-v2', prepared in-process only in that setting)
  and keeps the demo's comparison: BiFormer against a ViT of about its size."""
  arch = check_colab_setting("biformer", monkeypatch)
  assert (arch.n_win, arch.topks[0]) == (4, 4)  # 32x32 stage-0 map in 4x4 regions; top-4 of 16
