"""validate(): every bad field is named, with its value and what is allowed."""
import re

import ml_collections
import pytest

from common.data import config
from common.data import pipeline


def _image(**kw):
  return config.image_data_config("digits", **kw)


def _text(**kw):
  return config.text_data_config("pystdlib_text", **kw)


def test_defaults_are_valid():
  pipeline.validate(_image())
  pipeline.validate(config.image_data_config("mnist5k", augment=("random_crop", "flip")))
  pipeline.validate(_text())
  pipeline.validate(_text(task_format="span_corruption"))


@pytest.mark.parametrize("make,field,value", [
    (_image, "name", "mnist"),
    (_image, "name", ""),
    (_image, "kind", "text"),
    (_image, "train_split", "validation"),
    (_image, "eval_split", "val"),
    (_image, "image_size", -1),
    (_image, "image_size", 2.5),
    (_image, "channels", 2),
    (_image, "mean", (0.5, 0.5)),
    (_image, "std", (0.0,)),
    (_image, "augment", "flip"),
    (_image, "augment", ("rotate",)),
    (_image, "label_noise", 1.5),
    (_image, "num_workers", -1),
    (_image, "preprocess", "inception"),
    (_image, "crop_fraction", 0.0),
    (_image, "interpolation", "lanczos"),
    (_image, "crop_scale", (0.5, 0.2)),
    (_text, "seq_len", 0),
    (_text, "seq_len", -8),
    (_text, "task_format", "mlm"),
    (_text, "tokenizer", "wordpiece"),
    (_text, "tokenizer", "sentencepiece:100"),
    (_text, "tokenizer", "sentencepiece:/no/such/file.model"),
    (_text, "eval_split", "test"),
    (_text, "noise_density", 0.0),
    (_text, "mean_noise_span_length", 0.5),
    (_text, "inputs_length", 2),
    (_text, "prepare", 1),
])
def test_bad_value_names_field_and_value(make, field, value):
  # A fresh ConfigDict: ConfigDict's own type safety would refuse some of these values.
  cfg = ml_collections.ConfigDict(dict(make().to_dict(), **{field: value}))
  with pytest.raises(ValueError) as info:
    pipeline.validate(cfg)
  message = str(info.value)
  assert field in message or (field == "kind" and "holds" in message), message
  assert repr(value) in message or str(value) in message, message
  assert re.search(r"allowed|must|expected|has splits|>=|one of", message), message


def test_unknown_fields():
  cfg = _image()
  cfg.seq_len = 128  # a text field on an image config
  with pytest.raises(ValueError, match="unknown field.*seq_len"):
    pipeline.validate(cfg)
  with pytest.raises(ValueError, match="unknown field.*imagesize"):
    config.image_data_config("digits", imagesize=32)


def test_entry_point_arguments(digits_config):
  cfg = digits_config()
  with pytest.raises(ValueError, match="batch_size=0"):
    pipeline.train_iterator(cfg, seed=0, process_index=0, process_count=1, batch_size=0)
  with pytest.raises(ValueError, match=r"process_index=2 .*\[0, 2\)"):
    pipeline.eval_iterator(cfg, split="test", process_index=2, process_count=2, batch_size=8)
  with pytest.raises(ValueError, match="split 'val' is not in dataset 'digits'"):
    pipeline.eval_iterator(cfg, split="val", process_index=0, process_count=1, batch_size=8)


def test_hand_written_partial_config_is_completed(data_dir):
  # What a project may write without the helpers: kind inferred, the rest defaulted.
  cfg = ml_collections.ConfigDict(dict(
      name="mnist5k", train_split="train", eval_split="test", image_size=28, channels=1,
      num_classes=10, augment=("flip_lr",), label_noise=0.1, num_workers=0, data_dir=data_dir))
  resolved = pipeline.validate(cfg)
  assert resolved.kind == "image" and resolved.mean == (0.5,) and resolved.label_noise == 0.1
  assert "kind" not in cfg  # the caller's config is not modified
  batch = next(pipeline.train_iterator(cfg, seed=0, process_index=0, process_count=1,
                                       batch_size=2))
  assert batch["image"].shape == (2, 28, 28, 1)
  text = ml_collections.ConfigDict(dict(name="pystdlib_text", task_format="span_corruption",
                                        inputs_length=128, targets_length=32))
  assert config.resolve(text).extra_ids == 100
  with pytest.raises(ValueError, match="config.data.eval_split='test'.*validation"):
    pipeline.validate(ml_collections.ConfigDict(dict(name="pystdlib_text", eval_split="test")))
  with pytest.raises(ValueError, match="config.data.kind"):
    pipeline.validate(ml_collections.ConfigDict(dict(name="tfds:cifar100")))
