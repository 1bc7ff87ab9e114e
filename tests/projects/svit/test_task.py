"""SViT task and configs: recipe fields, architecture resolution, loss masking and errors."""
import importlib.util
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from projects.svit import task as task_lib

CONFIGS = pathlib.Path(__file__).resolve().parents[3] / "projects" / "svit" / "configs"


def _load(name):
  spec = importlib.util.spec_from_file_location(f"svit_config_{name}", CONFIGS / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("variant,drop_path", [("SViT-S", 0.1), ("SViT-B", 0.4),
                                               ("SViT-L", 0.6)])
def test_imagenet_recipe(variant, drop_path):
  c = _load("imagenet").get_config(variant)
  assert c.optimizer.learning_rate == pytest.approx(1e-3)  # 5e-4 x 1024 / 512
  assert c.optimizer.weight_decay == 0.05 and c.optimizer.ema_decay == 0.99996
  assert c.optimizer.warmup_steps == 5 * (1_281_167 // 1024)
  assert c.train.num_steps == 300 * (1_281_167 // 1024)
  assert c.model.drop_path_rate == drop_path and c.data.crop_fraction == 0.875
  assert tuple(c.data.augment) == ("inception_crop", "flip", "randaugment", "random_erasing")
  arch = task_lib.stvit_config(c)
  assert arch.num_classes == 1000 and arch.drop_path_rate == drop_path


def test_384_finetune_recipe():
  c = _load("imagenet").get_config("SViT-B,384")
  assert (c.data.image_size, c.data.crop_fraction, c.train.batch_size) == (384, 1.0, 512)
  assert c.optimizer.learning_rate == 5e-6 and c.optimizer.schedule == "constant"
  assert c.optimizer.weight_decay == 1e-8 and not c.model.train_mode


def test_bad_variant_and_model_name():
  with pytest.raises(ValueError, match="SViT-XL"):
    _load("imagenet").get_config("SViT-XL")
  c = _load("mnist_demo").get_config("tiny")
  c.model.name = "resnet"
  with pytest.raises(ValueError, match="config.model.name='resnet'"):
    task_lib.get_task(c)
  c.model.name = "svit"
  c.model.arch.unlock()
  c.model.arch.bogus = 1
  with pytest.raises(ValueError, match="bogus"):
    task_lib.stvit_config(c)


def test_eval_loss_ignores_padding(build):
  t = task_lib.get_task(_load("mnist_demo").get_config("svit,tiny"))
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
