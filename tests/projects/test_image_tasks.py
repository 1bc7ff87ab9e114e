"""svit and biformer: the image-classification family's configs and Task, one test for both.

Both projects' config files are built by common/tasks/image_configs.py (the MNIST-5k demo, the
DeiT-style ImageNet recipe) and their Tasks are common/tasks/image.py's; each test runs for
each project.
"""
import importlib
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.train import config_io

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROJECTS = ("svit", "biformer")
# (project, ImageNet preset, the drop path of its official training command)
IMAGENET = [("svit", "SViT-S", 0.1), ("svit", "SViT-B", 0.4), ("svit", "SViT-L", 0.6),
            ("biformer", "BiFormer-T", 0.1), ("biformer", "BiFormer-S", 0.15),
            ("biformer", "BiFormer-B", 0.3), ("biformer", "BiFormer-STL", 0.1)]
STEPS_PER_EPOCH = 1_281_167 // 1024


def _config(project, family, arg):
  return config_io.load_config(f"{ROOT}/projects/{project}/configs/{family}.py:{arg}")


def _task_lib(project):
  return importlib.import_module(f"projects.{project}.task")


@pytest.mark.parametrize("project,variant,drop_path", IMAGENET)
def test_imagenet_recipe(project, variant, drop_path):
  c = _config(project, "imagenet", variant)
  assert c.optimizer.learning_rate == pytest.approx(1e-3)  # 5e-4 x 1024 / 512
  assert c.optimizer.weight_decay == 0.05 and c.optimizer.ema_decay == 0.99996
  assert c.optimizer.warmup_steps == 5 * STEPS_PER_EPOCH
  assert c.train.num_steps == 300 * STEPS_PER_EPOCH
  assert c.model.drop_path_rate == drop_path and c.data.crop_fraction == 0.875
  assert tuple(c.data.augment) == ("inception_crop", "flip", "randaugment", "random_erasing")
  task_lib = _task_lib(project)
  arch = task_lib.get_task(c).model_config()
  assert arch.num_classes == 1000 and arch.drop_path_rate == drop_path
  assert arch.dtype == jnp.bfloat16
  assert arch.embed_dim == task_lib.config_lib.PRESETS[variant].embed_dim
  assert getattr(arch, "attention_impl", "official") == "official"


@pytest.mark.parametrize("project,bad_variant", [("svit", "SViT-XL"), ("biformer", "BiFormer-XL")])
def test_bad_variant_and_model_name(project, bad_variant):
  with pytest.raises(ValueError, match=bad_variant):
    _config(project, "imagenet", bad_variant)
  c = _config(project, "mnist_demo", "tiny")
  c.model.name = "resnet"
  with pytest.raises(ValueError, match="config.model.name='resnet'"):
    _task_lib(project).get_task(c)


@pytest.mark.parametrize("project", PROJECTS)
def test_eval_loss_ignores_padding_and_training_needs_rngs(project, build):
  t = _task_lib(project).get_task(_config(project, "mnist_demo", f"{project},tiny"))
  model = build(lambda: t.build_model(nnx.Rngs(0)))
  rng = np.random.default_rng(0)
  images = rng.standard_normal((6, 32, 32, 1)).astype(np.float32)
  labels = np.array([1, 2, 3, 4, 0, 0], np.int32)
  loss_fn = nnx.jit(lambda m, b: t.loss(m, b, train=False, rngs=None))
  full = loss_fn(model, {"image": jnp.asarray(images[:4]), "label": jnp.asarray(labels[:4])})
  images[4:] = 100.0  # garbage in padding rows must not count
  padded = loss_fn(model, {"image": jnp.asarray(images), "label": jnp.asarray(labels),
                           "mask": jnp.asarray([1, 1, 1, 1, 0, 0], jnp.float32)})
  np.testing.assert_allclose(padded[0], full[0], rtol=1e-5)
  np.testing.assert_allclose(padded[1]["accuracy"], full[1]["accuracy"])
  with pytest.raises(ValueError, match="rngs"):
    t.loss(model, {"image": jnp.asarray(images), "label": jnp.asarray(labels)}, train=True,
           rngs=None)
