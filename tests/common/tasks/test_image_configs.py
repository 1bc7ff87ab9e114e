"""common/tasks/image_configs.py: the vision family's model-config base and config builders."""
import jax.numpy as jnp
import pytest

from common.tasks import image_configs


def test_model_fields_checks_resolves_and_splits_drop_path():
  cfg = image_configs.ImageModelFields(drop_path_rate=0.4, dtype="bfloat16")
  assert cfg.dtype == jnp.bfloat16 and cfg.param_dtype == jnp.float32
  rates = cfg.stage_drop_path_rates((2, 3))
  assert [len(r) for r in rates] == [2, 3]  # linspace(0, 0.4, 5), split by stage
  assert sum(rates, []) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
  assert image_configs.ImageModelFields(drop_path_rate=0.4).stage_drop_path_rates((1,)) == [[0.0]]
  for kwargs, match in ((dict(num_classes=-1), "num_classes=-1"), (dict(in_chans=0), "in_chans=0"),
                        (dict(drop_path_rate=1.0), r"drop_path_rate=1.0 must be in \[0, 1\)"),
                        (dict(remat_policy="some"), "remat_policy"),
                        (dict(param_dtype="float8"), "param_dtype")):
    with pytest.raises(ValueError, match=match):
      image_configs.ImageModelFields(**kwargs)
  assert image_configs.ImageModelFields.of(cfg) is cfg
  with pytest.raises(ValueError, match="expected a ImageModelFields"):
    image_configs.ImageModelFields.of(object())
  assert image_configs.DERIVED_FIELDS == ("num_classes", "in_chans", "drop_path_rate")


def test_mnist_demo_config_variants():
  arch, tiny_arch = dict(width=(8, 16), depth=(1, 1)), dict(width=(4, 4))
  paper = image_configs.mnist_demo_config("proj", None, arch=arch, tiny_arch=tiny_arch)
  assert paper.project == "proj" and paper.model.name == "proj"
  assert paper.model.arch.to_dict() == arch and paper.model.mixup.prob == 0.0
  assert paper.model.vit.to_dict() == image_configs.DEMO_VIT
  vit = image_configs.mnist_demo_config("proj", "vit,tiny,steps=30", arch=arch,
                                        tiny_arch=tiny_arch)
  assert vit.model.name == "vit" and vit.model.arch.width == (4, 4)
  assert vit.model.vit.width == 16 and vit.train.batch_size == 16
  assert (vit.train.num_steps, vit.optimizer.warmup_steps) == (30, 1)
  with pytest.raises(ValueError, match="unknown"):
    image_configs.mnist_demo_config("proj", "svit", arch=arch, tiny_arch=tiny_arch)


def test_imagenet_config_deit_recipe_and_finetune():
  c = image_configs.imagenet_config("proj", "P-S", drop_path_rate=0.2)
  steps_per_epoch = image_configs.IMAGENET_TRAIN_IMAGES // 1024
  assert (c.model.name, c.model.preset, c.model.drop_path_rate) == ("proj", "P-S", 0.2)
  assert c.optimizer.learning_rate == pytest.approx(1e-3)
  assert c.optimizer.end_lr_fraction == pytest.approx(1e-2)  # cosine to 1e-5
  assert c.optimizer.warmup_steps == 5 * steps_per_epoch
  assert c.train.num_steps == 300 * steps_per_epoch and c.model.mixup.prob == 1.0
  assert c.data.repeated_aug == 3  # DeiT's RASampler: an epoch is still ~N images, so steps too
  ft = image_configs.imagenet_config("proj", "P-S", drop_path_rate=0.2, batch_size=512,
                                     epochs=30, pretrain=False)
  base = image_configs.defaults.base_config().optimizer
  assert ft.optimizer.learning_rate == base.learning_rate  # left to the fine-tune's config
  assert ft.optimizer.ema_decay == 0.99996 and ft.train.batch_size == 512
