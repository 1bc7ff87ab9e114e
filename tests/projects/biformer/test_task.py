"""BiFormer's Task in training: drop path draws from the step's rng (the recipe both vision
projects share, and their eval loss, are tested in tests/projects/test_image_tasks.py)."""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common.train import config_io
from projects.biformer import task as task_lib

CONFIGS = pathlib.Path(__file__).resolve().parents[3] / "projects" / "biformer" / "configs"


def test_drop_path_follows_the_step_rng(build):
  c = config_io.load_config(f"{CONFIGS}/mnist_demo.py:biformer,tiny")
  c.model.drop_path_rate = 0.5
  t = task_lib.get_task(c)
  model = build(lambda: t.build_model(nnx.Rngs(0)))
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.standard_normal((6, 32, 32, 1)), jnp.float32),
           "label": jnp.asarray([1, 2, 3, 4, 0, 0], jnp.int32)}
  train_fn = nnx.jit(lambda m, b, k: t.loss(m, b, train=True, rngs=nnx.Rngs(dropout=k,
                                                                            default=k))[0])
  a = train_fn(model, batch, jax.random.key(1))
  b = train_fn(model, batch, jax.random.key(1))
  c_ = train_fn(model, batch, jax.random.key(2))
  np.testing.assert_allclose(a, b)  # the same step rng: the same drop-path masks
  assert not np.allclose(a, c_)
