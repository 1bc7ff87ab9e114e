"""The config files load, pass the trainer's checks and hold the official I-JEPA values."""
import re

import jax.numpy as jnp
import ml_collections
import pytest

from common.layers import remat
from common.train import config_checks, config_io
from projects.sparse_jepa import config as config_lib
from projects.sparse_jepa import task as task_lib

CONFIGS = "projects/sparse_jepa/configs"


@pytest.mark.parametrize("spec", ["mnist_demo.py:ijepa", "mnist_demo.py:sparse,tiny",
                                  "ijepa_cifar100.py:sparse", "ijepa_vith14_imagenet.py"])
def test_configs_validate(spec):
  config = config_io.load_config(f"{CONFIGS}/{spec}")
  config_checks.validate(config)
  config_lib.from_config(config.model)
  assert config.project == "sparse_jepa"
  assert ("latent_sparsity" in config.eval.evaluators) == config.model.sparse


def test_vith14_preset_is_the_official_yaml():
  c = config_io.load_config(f"{CONFIGS}/ijepa_vith14_imagenet.py")
  m = c.model
  assert (m.encoder, m.patch_size, m.pred_depth, m.pred_emb_dim) == ("vit_huge", 14, 12, 384)
  assert tuple(m.ema) == (0.996, 1.0) and m.ipe_scale == 1.0
  assert dict(m.mask) == dict(enc_mask_scale=(0.85, 1.0), pred_mask_scale=(0.15, 0.2),
                              aspect_ratio=(0.75, 1.5), nenc=1, npred=4, min_keep=10,
                              allow_overlap=False, keep_bucket=1.1)
  ipe = 1_281_167 // 2048
  assert (c.train.batch_size, c.train.num_steps, c.optimizer.warmup_steps) == (2048, 300 * ipe,
                                                                              40 * ipe)
  assert c.optimizer.learning_rate == 1e-3
  assert c.optimizer.learning_rate * c.optimizer.end_lr_fraction == pytest.approx(1e-6)
  assert c.optimizer.weight_decay == 0.04 and c.optimizer.weight_decay_mask == "no_bias_norm"
  assert c.data.image_size == 224 and m.dtype == "bfloat16"


@pytest.mark.parametrize("section, field, named", [
    ((), "nosuch", "config.model.nosuch"),
    ((), "pred_dept", "config.model.pred_dept (did you mean config.model.pred_depth?)"),
    (("mask",), "min_kep", "config.model.mask.min_kep (did you mean config.model.mask.min_keep?)"),
    (("sparsity",), "lasso_weigth", "config.model.sparsity.lasso_weigth"),
])
def test_misspelled_model_field_is_named(section, field, named):
  c = ml_collections.ConfigDict(
      config_io.load_config(f"{CONFIGS}/mnist_demo.py:sparse,tiny").to_dict())
  node = c.model
  for name in section:
    node = node[name]
  node[field] = 3
  with pytest.raises(ValueError, match=re.escape(named)):
    config_lib.from_config(c.model)
  with pytest.raises(ValueError, match=re.escape(named)):
    task_lib.get_task(c)


def test_model_config_resolves_presets_dtypes_and_remat():
  c = config_io.load_config(f"{CONFIGS}/ijepa_vith14_imagenet.py")
  m = config_lib.from_config(c.model)
  assert (m.embed_dim, m.depth, m.num_heads, m.mlp_ratio) == (1280, 32, 16, 4.0)
  assert m.dtype == jnp.bfloat16 and m.param_dtype == jnp.float32
  for policy in remat.POLICIES:
    c = config_io.load_config(f"{CONFIGS}/mnist_demo.py:tiny", **{"model.remat_policy": policy})
    assert config_lib.from_config(c.model).remat_policy == policy
  for field, value in (("remat_policy", "sometimes"), ("dtype", "float64"),
                       ("encoder", "vit_enormous")):
    c = config_io.load_config(f"{CONFIGS}/mnist_demo.py:tiny", **{f"model.{field}": value})
    with pytest.raises(ValueError, match=field):
      config_lib.from_config(c.model)
