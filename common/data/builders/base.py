"""Building, verifying and (when corrupt) rebuilding the local demo datasets.

Builders write array_record files with TFDS and need no TensorFlow: images are stored as
uint8 `Tensor` features (TFDS's `Image` feature would need TensorFlow to encode PNGs).
"""
from __future__ import annotations

import contextlib
import fcntl
import inspect
import logging
import os
import shutil
import sys
import threading
from typing import Callable

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from common.data import paths
from common.data.builders import DemoDataset
from common.data.builders import splits as splits_lib

log = logging.getLogger(__name__)


class _ClassProperty:
  def __init__(self, fget):
    self._fget = fget

  def __get__(self, obj, cls):
    return self._fget(cls)


class LocalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the demo builders: array_record output, no global TFDS name registration.

  `skip_registration` keeps our names out of TFDS's registry, so they never clash with a
  TFDS dataset of the same name. `code_path` is overridden because TFDS resolves it through
  `importlib_resources` (not installed) and fails on namespace packages, which is how an
  editable install of this repo shows up outside the repo root.
  """

  code_path = _ClassProperty(lambda cls: epath.Path(inspect.getfile(cls)))
  # Every demo dataset is still at its first version; a builder whose data changes overrides.
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def dataset_info(self, features: dict, **kwargs) -> tfds.core.DatasetInfo:
    """The DatasetInfo of `features`, described by the builder module's docstring."""
    return _LocalInfo(
        builder=self, description=sys.modules[type(self).__module__].__doc__,
        features=tfds.features.FeaturesDict(features), **kwargs)


class _LocalInfo(tfds.core.DatasetInfo):
  """A demo dataset's info: never looked up in TFDS's GCS bucket, where none of them is.

  TFDS does that lookup whenever a builder is made before its data is prepared, and creates a
  temporary directory first that it never removes: an empty /tmp/tmp*tfds per builder made.
  """

  def initialize_from_bucket(self) -> None:
    pass


class StratifiedImageBuilder(LocalBuilder, skip_registration=True):
  """An image classification set from an installed package, split train / test by
  `splits.stratified_test_indices(labels, TEST_SIZE, SPLIT_SEED)`.

  A subclass sets IMAGE_SHAPE, NUM_CLASSES, TEST_SIZE and LOAD (() -> (uint8 images
  [N, *IMAGE_SHAPE], int64 labels [N])). A record's key is its index in the loaded arrays,
  so it can be traced back to its source.
  """

  IMAGE_SHAPE: tuple[int, int, int]
  NUM_CLASSES = 10
  TEST_SIZE: int
  SPLIT_SEED = 0
  LOAD: Callable[[], tuple[np.ndarray, np.ndarray]]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info(
        {"image": tfds.features.Tensor(shape=self.IMAGE_SHAPE, dtype=np.uint8),
         "label": tfds.features.ClassLabel(num_classes=self.NUM_CLASSES)},
        supervised_keys=("image", "label"))

  def _split_generators(self, dl_manager):
    del dl_manager  # The data ships with an installed package.
    images, labels = type(self).LOAD()
    test = splits_lib.stratified_test_indices(labels, self.TEST_SIZE, self.SPLIT_SEED)
    train = np.setdiff1d(np.arange(len(labels)), test)
    return {
        "train": self._generate_examples(images, labels, train),
        "test": self._generate_examples(images, labels, test),
    }

  def _generate_examples(self, images, labels, indices):
    for i in indices:
      yield int(i), {"image": images[i], "label": int(labels[i])}


# Builders verified in this process, keyed by (name, data_dir): verification reads every split
# once, which is cheap but pointless to repeat for each iterator the trainer creates.
_VERIFIED: dict[tuple[str, str], tfds.core.DatasetBuilder] = {}
_THREAD_LOCK = threading.Lock()


@contextlib.contextmanager
def file_lock(path: str):
  """Holds an exclusive lock on the file `path`, waiting while another process holds it: one
  build of a dataset at a time across processes (pytest-xdist, multi-host on a shared FS), one
  training of a run that demos share (`common.tasks.demo_runs.train_shared`)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def _verify(builder: tfds.core.DatasetBuilder, spec: DemoDataset) -> None:
  """Raises if the prepared files are incomplete, unreadable or of the wrong size."""
  splits = builder.info.splits
  for split in spec.splits:
    if split not in splits:
      raise ValueError(f"split {split!r} missing from dataset_info (has {list(splits)})")
    n = splits[split].num_examples
    if spec.expected_sizes and n != spec.expected_sizes[split]:
      raise ValueError(f"split {split!r} has {n} examples, expected {spec.expected_sizes[split]}")
    if n <= 0:
      raise ValueError(f"split {split!r} is empty")
    source = builder.as_data_source(split=split)
    if len(source) != n:
      raise ValueError(f"split {split!r}: files hold {len(source)} records, "
                       f"dataset_info says {n}")
    # Reading the first and last record decodes every shard's header and footer.
    for index in (0, n - 1):
      example = source[index]
      if not isinstance(example, dict) or not example:
        raise ValueError(f"split {split!r}: record {index} decoded to {example!r}")


def _version_dir(spec: DemoDataset, root: str) -> str:
  # The builder's name, not the entry's: an entry for a second config shares its builder's folder.
  cls = spec.builder_class()
  parts = [root, cls.name]
  if (config := spec.builder_config()) is not None:
    parts.append(config.name)
  parts.append(str(cls.VERSION))
  return os.path.join(*parts)


def _remove_version_dir(spec: DemoDataset, root: str) -> None:
  target = os.path.abspath(_version_dir(spec, root))
  # Guard: only ever delete <root>/<builder name>/.../<version> of this dataset.
  if not target.startswith(os.path.join(os.path.abspath(root), spec.builder_class().name) + os.sep):
    raise AssertionError(f"refusing to delete {target}")
  shutil.rmtree(target, ignore_errors=True)


def load_builder(spec: DemoDataset, root: str | None = None, *,
                 manual_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """Returns the prepared, verified builder; builds it on first use, rebuilds it if corrupt.

  `manual_dir` (config.data.manual_dir) is where builders that read local files look
  (chess_lichess); None means TFDS's `<root>/downloads/manual`.
  """
  root = os.path.abspath(root or paths.default_data_dir())
  key = (spec.name, root)
  with _THREAD_LOCK:
    if key in _VERIFIED:
      return _VERIFIED[key]
    with file_lock(paths.lock_path(root, spec.name)):
      for attempt in range(2):
        building = False
        try:
          builder = spec.builder_class()(data_dir=root, config=spec.builder_config())
          if not builder.is_prepared():
            log.info("Building demo dataset %r into %s (first use).", spec.name, root)
            download_config = (tfds.download.DownloadConfig(manual_dir=manual_dir)
                               if manual_dir else None)
            building = True
            builder.download_and_prepare(file_format="array_record",
                                         download_config=download_config)
            building = False
          _verify(builder, spec)
          break
        except Exception as e:  # pylint: disable=broad-except
          # A build that lacks an input (no Stockfish, an empty manual_dir) is no damage to
          # delete and rebuild; the builder's message already says what to do.
          if building and isinstance(e, FileNotFoundError):
            raise
          if attempt:
            raise RuntimeError(f"Demo dataset {spec.name!r} in {root} could not be built "
                               f"and verified: {e}") from e
          log.warning("Demo dataset %r in %s is corrupt or incomplete (%s: %s); deleting %s "
                      "and rebuilding.", spec.name, root, type(e).__name__, e,
                      _version_dir(spec, root))
          _remove_version_dir(spec, root)
      _VERIFIED[key] = builder
      return builder


def forget(name: str | None = None) -> None:
  """Drops cached verification results (tests use it after corrupting files on purpose)."""
  with _THREAD_LOCK:
    for key in [k for k in _VERIFIED if name is None or k[0] == name]:
      del _VERIFIED[key]
