"""Demo builders: build, reload, split sizes, rebuild after corruption."""
import glob
import os
import tempfile

import numpy as np
import pytest

from common.data import builders
from common.data.builders import base
from common.data.builders import splits
from common.data.builders.pystdlib_text import pystdlib_text


@pytest.mark.parametrize("name,sizes", [("mnist5k", {"train": 4000, "test": 1000}),
                                        ("digits", {"train": 1437, "test": 360})])
def test_image_builders_split_sizes_and_strata(data_dir, name, sizes):
  builder = base.load_builder(builders.get(name), data_dir)
  assert {s: builder.info.splits[s].num_examples for s in sizes} == sizes
  test = builder.as_data_source("test")
  labels = np.array([test[i]["label"] for i in range(len(test))])
  counts = np.bincount(labels, minlength=10)
  # Stratified: every class holds its share of the test split, +-1.
  assert counts.sum() == sizes["test"] and counts.max() - counts.min() <= 7
  example = test[0]
  assert example["image"].dtype == np.uint8 and example["image"].ndim == 3
  assert example["image"].max() > 128  # scaled to 0..255 (digits were 0..16)


def test_mnist_pairs_builds_from_mnist5k(data_dir):
  builder = base.load_builder(builders.get("mnist_pairs"), data_dir)
  assert {s: builder.info.splits[s].num_examples for s in ("train", "test")} == \
      {"train": 8000, "test": 2000}
  test = builder.as_data_source("test")
  for i in (0, 1, 1999):
    e = test[i]
    assert e["image"].shape == (112, 112, 1) and e["image"].dtype == np.uint8
    assert e["label"] == max(e["label_a"], e["label_b"])


def test_image_splits_are_disjoint_and_reproducible(data_dir):
  builder = base.load_builder(builders.get("digits"), data_dir)
  def keys(split):
    src = builder.as_data_source(split)
    return {src[i]["image"].tobytes() + bytes([src[i]["label"]]) for i in range(len(src))}
  train, test = keys("train"), keys("test")
  # Digits has a handful of exact duplicates; the splits still hardly overlap.
  assert len(train & test) <= 5
  from sklearn.datasets import load_digits
  y = load_digits().target
  assert np.array_equal(splits.stratified_test_indices(y, 360, 0),
                        splits.stratified_test_indices(y, 360, 0))


def test_pystdlib_split_by_path_hash(data_dir):
  builder = base.load_builder(builders.get("pystdlib_text"), data_dir)
  assert pystdlib_text.python_config_name() in str(builder.data_dir)
  train = builder.as_data_source("train")
  valid = builder.as_data_source("validation")
  files = pystdlib_text.stdlib_files()
  assert len(train) + len(valid) == len(files)
  assert 0 < len(valid) < 0.05 * len(files)
  for source, split in ((train, "train"), (valid, "validation")):
    for i in range(0, len(source), max(1, len(source) // 20)):
      path = source[i]["path"].decode()
      assert pystdlib_text.split_of(path) == split
      assert "test/" not in path and "site-packages" not in path
  assert any(source[i]["path"] == b"os.py" for source in (train, valid)
             for i in range(len(source)))


def test_reload_reuses_files(data_dir):
  spec = builders.get("digits")
  builder = base.load_builder(spec, data_dir)
  files = sorted(glob.glob(os.path.join(str(builder.data_dir), "*")))
  mtimes = [os.path.getmtime(f) for f in files]
  base.forget("digits")
  again = base.load_builder(spec, data_dir)
  assert str(again.data_dir) == str(builder.data_dir)
  assert [os.path.getmtime(f) for f in files] == mtimes


def test_making_a_builder_leaves_no_temporary_directory(tmp_path, monkeypatch):
  # TFDS looks a builder's info up in its GCS bucket when the data is not prepared yet, and
  # leaves the temporary directory it made for that (base._LocalInfo skips the lookup).
  temp = tmp_path / "tmp"
  temp.mkdir()
  monkeypatch.setattr(tempfile, "tempdir", str(temp))
  builder = base.load_builder(builders.get("digits"), str(tmp_path / "data"))
  base.forget("digits")
  assert len(builder.as_data_source("train")) == 1437
  assert os.listdir(temp) == []


@pytest.mark.parametrize("damage", ["truncate_records", "garbage_info", "delete_records"])
def test_rebuilds_corrupt_dataset(tmp_path, caplog, damage):
  spec = builders.get("digits")
  root = str(tmp_path)
  builder = base.load_builder(spec, root)
  records = sorted(glob.glob(os.path.join(str(builder.data_dir), "*train.array_record*")))
  assert records
  if damage == "truncate_records":
    with open(records[0], "r+b") as f:
      f.truncate(100)
  elif damage == "garbage_info":
    with open(os.path.join(str(builder.data_dir), "dataset_info.json"), "w") as f:
      f.write("{not json")
  else:
    os.remove(records[0])
  base.forget("digits")
  caplog.set_level("WARNING")
  rebuilt = base.load_builder(spec, root)
  assert "rebuilding" in caplog.text
  assert len(rebuilt.as_data_source("train")) == 1437
