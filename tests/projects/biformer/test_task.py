"""BiFormer task and configs: recipe fields, architecture resolution, loss masking and errors."""
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from projects.biformer import task as task_lib

CONFIGS = pathlib.Path(__file__).resolve().parents[3] / "projects" / "biformer" / "configs"


def _load(name):
  spec = importlib.util.spec_from_file_location(f"biformer_config_{name}", CONFIGS / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("variant,drop_path", [("BiFormer-T", 0.1), ("BiFormer-S", 0.15),
                                               ("BiFormer-B", 0.3), ("BiFormer-STL", 0.1)])
def test_imagenet_recipe(variant, drop_path):
  c = _load("imagenet").get_config(variant)
  assert c.optimizer.learning_rate == pytest.approx(1e-3)  # 5e-4 x 1024 / 512
  assert c.optimizer.weight_decay == 0.05 and c.optimizer.ema_decay == 0.99996
  assert c.optimizer.warmup_steps == 5 * (1_281_167 // 1024)
  assert c.model.drop_path_rate == drop_path and c.data.crop_fraction == 0.875
  assert tuple(c.data.augment) == ("inception_crop", "flip", "randaugment", "random_erasing")
  arch = task_lib.biformer_config(c)
  assert arch.num_classes == 1000 and arch.drop_path_rate == drop_path
  assert _load("imagenet").get_config(f"{variant},impl=block_sparse").model.attention_impl == \
      "block_sparse"


def test_bad_variant_and_model_name():
  with pytest.raises(ValueError, match="BiFormer-XL"):
    _load("imagenet").get_config("BiFormer-XL")
  c = _load("mnist_demo").get_config("tiny")
  c.model.name = "resnet"
  with pytest.raises(ValueError, match="config.model.name='resnet'"):
    task_lib.get_task(c)
  c.model.name = "biformer"
  c.model.arch.unlock()
  c.model.arch.bogus = 1
  with pytest.raises(ValueError, match="bogus"):
    task_lib.biformer_config(c)


def _materialise(model):
  """Fills an abstract model with random values: cheaper than compiling its initialisers."""
  rng = np.random.default_rng(0)
  updates = []
  for path, var in nnx.to_flat_state(nnx.state(model)):
    if jnp.issubdtype(var.dtype, jax.dtypes.prng_key):
      value = jax.random.key(len(updates))
    elif jnp.issubdtype(var.dtype, jnp.integer):
      value = np.zeros(var.shape, var.dtype)
    elif path[-1] in ("var", "scale"):
      value = np.ones(var.shape, np.float32)
    else:
      value = rng.standard_normal(var.shape) / np.sqrt(max(1, np.prod(var.shape[:-1])))
    updates.append((path, var.replace(jnp.asarray(value, var.dtype))))
  nnx.update(model, nnx.from_flat_state(updates))
  return model


def test_losses_mask_padding_and_drop_path_follows_the_step_rng():
  c = _load("mnist_demo").get_config("biformer,tiny")
  c.model.drop_path_rate = 0.5
  t = task_lib.get_task(c)
  model = _materialise(nnx.eval_shape(lambda: t.build_model(nnx.Rngs(0))))
  rng = np.random.default_rng(0)
  images = rng.standard_normal((6, 32, 32, 1)).astype(np.float32)
  labels = np.array([1, 2, 3, 4, 0, 0], np.int32)
  loss_fn = nnx.jit(lambda m, b: t.loss(m, b, train=False, rngs=None))
  full = loss_fn(model, {"image": jnp.asarray(images[:4]), "label": jnp.asarray(labels[:4])})
  images[4:] = 100.0  # garbage in padding rows must not count
  batch = {"image": jnp.asarray(images), "label": jnp.asarray(labels)}
  padded = loss_fn(model, dict(batch, mask=jnp.asarray([1, 1, 1, 1, 0, 0], jnp.float32)))
  np.testing.assert_allclose(padded[0], full[0], rtol=1e-5)

  train_fn = nnx.jit(lambda m, b, k: t.loss(m, b, train=True, rngs=nnx.Rngs(dropout=k,
                                                                            default=k))[0])
  a = train_fn(model, batch, jax.random.key(1))
  b = train_fn(model, batch, jax.random.key(1))
  c_ = train_fn(model, batch, jax.random.key(2))
  np.testing.assert_allclose(a, b)  # the same step rng: the same drop-path masks
  assert not np.allclose(a, c_)
