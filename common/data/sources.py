"""Random-access sources for a data config: a demo dataset (built on first use) or a prepared
TFDS dataset (`tfds:<name>`), read from array_record files without TensorFlow.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any

from common.data import errors
from common.data import paths

log = logging.getLogger(__name__)

TFDS_PREFIX = "tfds:"
# Manual-download datasets we know of and the files TFDS wants in manual_dir.
MANUAL_FILES = {
    "imagenet2012": ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
    "imagenet2012_subset": ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
}

_BUILDERS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def is_tfds(name: str) -> bool:
  return isinstance(name, str) and name.startswith(TFDS_PREFIX)


def tfds_name(name: str) -> str:
  return name[len(TFDS_PREFIX):]


def build_lock(root: str, name: str):
  """An exclusive cross-process lock for building `name` under `root`."""
  from common.data.builders import base  # pylint: disable=g-import-not-at-top
  return base.file_lock(paths.lock_path(root, name))


def as_text(value: Any) -> str:
  """TFDS Text features come back as bytes (or 0-d object arrays of bytes); return str."""
  if hasattr(value, "item") and not isinstance(value, (bytes, str)):
    value = value.item()
  if isinstance(value, bytes):
    return value.decode("utf-8", errors="replace")
  return str(value)


def split_base(split: str) -> str:
  """'train[:10%]' -> 'train' (TFDS slicing syntax is allowed in split names)."""
  return split.split("[", 1)[0]


def builder_for(data_config) -> Any:
  """The prepared TFDS builder for `data_config.name` (demo builds on first use)."""
  name = data_config.name
  root = paths.data_dir(data_config)
  if not is_tfds(name):
    from common.data import builders  # pylint: disable=g-import-not-at-top
    from common.data.builders import base  # pylint: disable=g-import-not-at-top
    return base.load_builder(builders.get(name), root,
                             manual_dir=paths.manual_dir(data_config))
  key = (name, root, paths.is_explicit(data_config))
  with _LOCK:
    if key not in _BUILDERS:
      _BUILDERS[key] = _prepared_tfds_builder(data_config)
    return _BUILDERS[key]


def open_split(data_config, split: str, *, raw_images: bool = False):
  """(random-access source, DatasetInfo) for one split of the config's dataset.

  `raw_images`: return TFDS `Image` features as encoded bytes (the ImageNet path decodes and
  crops them itself, which is much cheaper than decoding full-size images first).
  """
  builder = builder_for(data_config)
  info = builder.info
  if split_base(split) not in info.splits:
    raise ValueError(f"split {split!r} is not in dataset {data_config.name!r}; "
                     f"allowed: {sorted(info.splits)} (TFDS slicing like 'train[:10%]' is fine).")
  keys = (("image_key", "label_key") if data_config.kind == "image" else ("text_key",))
  for field in keys:
    if field == "label_key" and not data_config[field]:
      continue  # '' reads no label (unlabelled image sets, e.g. pixel language models)
    if data_config[field] not in info.features:
      raise ValueError(f"config.data.{field}={data_config[field]!r} is not a feature of "
                       f"{data_config.name!r}; allowed: {sorted(info.features.keys())}.")
  decoders = None
  if raw_images:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    key = data_config.get("image_key", "image")
    if isinstance(info.features[key], tfds.features.Image):
      decoders = {key: tfds.decode.SkipDecoding()}
  try:
    source = builder.as_data_source(split=split, decoders=decoders)
  except NotImplementedError as e:
    # Prepared, but only as TFRecord: tell the user how to convert rather than what failed.
    raise _not_found(data_config, [str(builder.data_dir)],
                     detail=f"It exists there, but not as array_record ({e}).") from e
  return source, info


def _candidate_dirs(data_config) -> list[str]:
  """Our data dir, plus TFDS's own default when the config does not pin a data dir."""
  dirs = [paths.data_dir(data_config)]
  if not paths.is_explicit(data_config):
    tfds_default = os.path.expanduser(os.environ.get("TFDS_DATA_DIR")
                                      or os.path.join("~", "tensorflow_datasets"))
    if os.path.abspath(tfds_default) not in dirs:
      dirs.append(os.path.abspath(tfds_default))
  return dirs


def _prepared_tfds_builder(data_config):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  name = tfds_name(data_config.name)
  looked, first = [], None
  for root in _candidate_dirs(data_config):
    try:
      builder = tfds.builder(name, data_dir=root)
    except Exception as e:  # pylint: disable=broad-except
      # Unknown to TFDS's registry and no prepared copy here: keep looking.
      looked.append(os.path.join(root, name.split(":")[0]))
      log.debug("tfds.builder(%r, data_dir=%r) failed: %s", name, root, e)
      continue
    first = first or builder
    looked.append(str(builder.data_dir))
    if builder.is_prepared():
      return builder
  if data_config.get("prepare", False) and first is not None:
    return _prepare(data_config, first)
  raise _not_found(data_config, looked)


def _prepare(data_config, builder):
  """Generates the dataset in-process (opt-in: `config.data.prepare=True`)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  manual = paths.manual_dir(data_config)
  log.info("Preparing %s into %s (manual_dir=%s)", builder.name, builder.data_dir, manual)
  with build_lock(paths.data_dir(data_config), builder.name):
    if not builder.is_prepared():
      try:
        builder.download_and_prepare(
            file_format="array_record",
            download_config=tfds.download.DownloadConfig(manual_dir=manual))
      except Exception as e:  # pylint: disable=broad-except
        raise _not_found(data_config, [str(builder.data_dir)],
                         detail=f"Preparing it here failed: {type(e).__name__}: {e}") from e
  return builder


def _not_found(data_config, looked, detail: str = "") -> errors.DatasetNotFoundError:
  name = tfds_name(data_config.name)
  short = name.split("/")[0].split(":")[0]
  root = paths.data_dir(data_config)
  manual = paths.manual_dir(data_config) or os.path.join(root, "downloads", "manual")
  steps = []
  if short in MANUAL_FILES:
    steps.append(f"1. Download {', '.join(MANUAL_FILES[short])} yourself (registration needed, "
                 f"see the TFDS catalog page for {short}) and place them in {manual}")
  steps.append(("2. " if short in MANUAL_FILES else "1. ") +
               "On a machine with TensorFlow (TFDS needs it to *generate* most datasets; this "
               "repo only reads them): pip install tensorflow tensorflow-datasets==4.9.10")
  cmd = f"tfds build {name} --data_dir={root} --file_format=array_record"
  if short in MANUAL_FILES:
    cmd += f" --manual_dir={manual}"
  steps.append(f"   {cmd}")
  steps.append(f"   (built elsewhere? copy its {root}/{short} folder here, or set "
               "config.data.data_dir to where it is)")
  steps.append("Already prepared as TFRecord? Convert it in place: tfds convert_format "
               f"--dataset_dir={root}/{short} --out_file_format=array_record")
  if short in MANUAL_FILES:
    steps.append("Or, with the files in manual_dir and no TensorFlow needed for this dataset's "
                 "generator, set config.data.prepare=True to generate it in-process.")
  return errors.DatasetNotFoundError(data_config.name, looked, "\n".join(steps), detail)
