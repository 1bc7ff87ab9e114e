"""The config files load, pass the trainer's checks and hold the official I-JEPA values."""
import pytest

from common.train import config_checks, config_io

CONFIGS = "projects/sparse_jepa/configs"


@pytest.mark.parametrize("spec", ["mnist_demo.py:ijepa", "mnist_demo.py:sparse,tiny",
                                  "ijepa_cifar100.py:sparse", "ijepa_vith14_imagenet.py"])
def test_configs_validate(spec):
  config = config_io.load_config(f"{CONFIGS}/{spec}")
  config_checks.validate(config)
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
