"""SViT's own config variant: the 384 fine-tune (the recipe both vision projects share, and their
Task, are tested in tests/projects/test_image_tasks.py)."""
import pathlib

from common.train import config_io

CONFIGS = pathlib.Path(__file__).resolve().parents[3] / "projects" / "svit" / "configs"


def test_384_finetune_recipe():
  c = config_io.load_config(f"{CONFIGS}/imagenet.py:SViT-B,384")
  assert (c.data.image_size, c.data.crop_fraction, c.train.batch_size) == (384, 1.0, 512)
  assert c.optimizer.learning_rate == 5e-6 and c.optimizer.schedule == "constant"
  assert c.optimizer.weight_decay == 1e-8 and not c.model.train_mode
  assert c.train.num_steps == 30 * (1_281_167 // 512)
