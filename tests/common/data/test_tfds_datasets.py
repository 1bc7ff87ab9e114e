"""'tfds:' datasets: the missing-dataset error, and the ImageNet decode/crop path on a fake set."""
import io
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from common.data import config
from common.data import errors
from common.data import image_ops
from common.data import pipeline
from common.data.builders import base


def test_missing_dataset_error_says_where_and_how(tmp_path):
  cfg = config.image_data_config("tfds:cifar100", data_dir=str(tmp_path))
  with pytest.raises(errors.DatasetNotFoundError) as info:
    pipeline.validate(cfg)
  message = str(info.value)
  assert isinstance(info.value, FileNotFoundError)
  assert "tfds:cifar100" in message
  assert str(tmp_path / "cifar100") in message
  assert f"tfds build cifar100 --data_dir={tmp_path} --file_format=array_record" in message
  assert "convert_format" in message


def test_missing_manual_dataset_names_manual_dir_and_files(tmp_path):
  manual = tmp_path / "manual"
  cfg = config.image_data_config("tfds:imagenet2012", data_dir=str(tmp_path / "data"),
                                 manual_dir=str(manual))
  with pytest.raises(errors.DatasetNotFoundError) as info:
    pipeline.train_iterator(cfg, seed=0, process_index=0, process_count=1, batch_size=2)
  message = str(info.value)
  assert "ILSVRC2012_img_train.tar" in message and "ILSVRC2012_img_val.tar" in message
  assert f"--manual_dir={manual}" in message
  assert str(tmp_path / "data" / "imagenet2012") in message


def test_unknown_tfds_name_is_not_found(tmp_path):
  cfg = config.text_data_config("tfds:no_such_dataset_xyz", data_dir=str(tmp_path))
  with pytest.raises(errors.DatasetNotFoundError, match="no_such_dataset_xyz"):
    pipeline.validate(cfg)


def _jpeg(h, w, value):
  buf = io.BytesIO()
  Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(buf, format="JPEG")
  return buf.getvalue()


class FakeImagenet(base.LocalBuilder, skip_registration=True):
  """JPEGs of varied sizes with 3 classes, laid out like imagenet2012."""

  def _info(self):
    return self.dataset_info({"image": tfds.features.Image(encoding_format="jpeg"),
                              "label": tfds.features.ClassLabel(num_classes=3)})

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(12), "validation": self._generate_examples(5)}

  def _generate_examples(self, n):
    for i in range(n):
      yield i, {"image": io.BytesIO(_jpeg(40 + 7 * i, 90 - 5 * i, 20 * i)), "label": i % 3}


def test_imagenet_path_on_a_fake_prepared_dataset(tmp_path):
  FakeImagenet(data_dir=str(tmp_path)).download_and_prepare(file_format="array_record")
  cfg = config.image_data_config("tfds:fake_imagenet", data_dir=str(tmp_path), image_size=32,
                                 preprocess="imagenet", eval_split="validation",
                                 augment=("inception_crop", "flip"))
  pipeline.validate(cfg)
  assert pipeline.num_classes(cfg) == 3
  batch = next(pipeline.train_iterator(cfg, seed=0, process_index=0, process_count=1,
                                       batch_size=4))
  assert batch["image"].shape == (4, 32, 32, 3) and batch["image"].dtype == np.float32
  # The ImageNet preset picks this preprocessing by itself.
  preset = config.image_data_config("tfds:imagenet2012")
  assert (preset.preprocess, preset.augment, preset.image_size) == (
      "imagenet", ("inception_crop", "flip"), 224)
  batches = list(pipeline.eval_iterator(cfg, split="validation", process_index=0,
                                        process_count=1, batch_size=4))
  assert [b["mask"].sum() for b in batches] == [4, 1]
  # Flat-colour JPEGs: every eval pixel is (value/255 - 0.5)/0.5 for that example's value.
  first = batches[0]["image"][0]
  assert np.allclose(first, first.mean(), atol=0.05)


def test_imagenet_ops_shapes():
  rng = np.random.default_rng(0)
  data = _jpeg(120, 200, 128)
  crop = image_ops.inception_crop(data, 64, 64, rng)
  assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
  center = image_ops.decode_resize_center_crop(data, 64, 64, 0.875)
  assert center.shape == (64, 64, 3) and abs(int(center.mean()) - 128) <= 2
  grey = image_ops.decode_resize_center_crop(np.zeros((30, 50), np.uint8), 16, 16, 1.0)
  assert grey.shape == (16, 16, 1)
  img = Image.fromarray(np.zeros((10, 400, 3), np.uint8))  # extreme aspect: fallback crop
  out = image_ops.random_resized_crop(img, 8, rng, attempts=0)
  assert out.size == (8, 8)


def test_tfds_default_dir_is_searched_when_no_data_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("SPARSE_DATA_DIR", str(tmp_path / "ours"))
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds_home"))
  cfg = config.image_data_config("tfds:cifar10")
  with pytest.raises(errors.DatasetNotFoundError) as info:
    pipeline.validate(cfg)
  assert str(tmp_path / "ours" / "cifar10") in str(info.value)
  assert str(tmp_path / "tfds_home" / "cifar10") in str(info.value)
  assert os.path.isdir(tmp_path) and not (tmp_path / "tfds_home").exists()
