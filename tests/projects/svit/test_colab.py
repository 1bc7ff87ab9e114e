"""The project's notebook runs end to end at smoke settings and produces its figures."""
from tests import golden


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
  import pathlib

  import jax
  import nbformat
  import numpy as np
  from flax import nnx

  from common.data import sources
  from common.train import config_checks, config_io
  from projects.svit import task as task_lib

  def no_download(*_):
    raise AssertionError("the colab setting's check must not open or download its dataset")
  monkeypatch.setattr(sources, "_prepared_tfds_builder", no_download)

  root = pathlib.Path(__file__).resolve().parents[3]
  path = root / "projects/svit/configs/mnist_demo.py"
  code = "".join(cell.source for cell in nbformat.read(root / "projects/svit/colab.ipynb",
                                                        as_version=4).cells)
  assert '"colab": "colab"' in code and "configs/mnist_demo.py:{name},{SIZE}" in code
  params = {}
  for name in ("svit", "vit"):
    config = config_io.load_config(f"{path}:{name},colab")
    config_checks.validate(config)
    task = task_lib.get_task(config)
    task.validate(config)
    assert (config.data.name, config.data.prepare, config.data.image_size,
            config.data.num_classes, config.data.eval_split) == (
                "tfds:imagenette/160px-v2", True, 128, 10, "validation")
    assert config.train.num_steps > config_io.load_config(f"{path}:{name}").train.num_steps
    model = nnx.eval_shape(lambda: task.build_model(nnx.Rngs(0)))
    params[name] = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
    if name == "svit":  # 128 px, stride-4 stem: 32x32 and 16x16 maps, 4x4 super tokens in each
      arch = task.model_config()
      assert tuple(arch.stoken_size[:2]) == ((8, 8), (4, 4))
  assert 0.8 < params["vit"] / params["svit"] < 1.25, params
  for local in ("tiny", "demo"):  # only the colab setting may download
    assert not config_io.load_config(f"{path}:svit,{local}").data.prepare
