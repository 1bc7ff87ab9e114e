"""The svit / biformer notebooks' `colab` setting, checked the same way for both projects."""
import importlib
import pathlib

import jax
import nbformat
import numpy as np
from flax import nnx

from common.data import sources
from common.train import config_checks, config_io

ROOT = pathlib.Path(__file__).resolve().parents[2]


def check_colab_setting(project: str, monkeypatch):
  """configs/mnist_demo.py:{project,vit},colab validates (task checks included) and builds its
  models' shapes without touching the data, names the downloadable Imagenette
  ('tfds:imagenette/160px-v2', prepared in-process only in that setting) and keeps the demo's
  comparison: the paper model against a ViT of about its size. Returns the paper model's
  `task.model_config()` for the project's own checks."""

  def no_download(*_):
    raise AssertionError("the colab setting's check must not open or download its dataset")
  monkeypatch.setattr(sources, "_prepared_tfds_builder", no_download)

  task_lib = importlib.import_module(f"projects.{project}.task")
  path = ROOT / f"projects/{project}/configs/mnist_demo.py"
  code = "".join(cell.source for cell in nbformat.read(ROOT / f"projects/{project}/colab.ipynb",
                                                        as_version=4).cells)
  assert '"colab": "colab"' in code and "configs/mnist_demo.py:{name},{SIZE}" in code
  params, arch = {}, None
  for name in (project, "vit"):
    config = config_io.load_config(f"{path}:{name},colab")
    config_checks.validate(config)
    task = task_lib.get_task(config)
    task.validate(config)
    assert (config.data.name, config.data.prepare, config.data.image_size,
            config.data.num_classes, config.data.eval_split) == (
                "tfds:imagenette/160px-v2", True, 128, 10, "validation")
    assert config.train.num_steps > config_io.load_config(f"{path}:{name}").train.num_steps
    model = nnx.eval_shape(lambda: task.build_model(nnx.Rngs(0)))  # pylint: disable=cell-var-from-loop
    params[name] = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
    if name == project:
      arch = task.model_config()
  assert 0.8 < params["vit"] / params[project] < 1.25, params
  for local in ("tiny", "demo"):  # only the colab setting may download
    assert not config_io.load_config(f"{path}:{project},{local}").data.prepare
  return arch
