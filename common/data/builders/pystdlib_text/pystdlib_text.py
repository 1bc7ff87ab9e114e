"""`pystdlib_text`: the `.py` sources of the running Python's standard library, one per example.

Source: `sysconfig.get_paths()['stdlib']`. Kept: every `*.py` file below it. Dropped:
  - `site-packages/`, `dist-packages/` (third-party code, differs per machine),
  - test directories (`test/`, `tests/`, `idle_test/`): they are 60% of the bytes, contain
    deliberately odd encodings, and would make the demo slow to build,
  - `_sysconfigdata_*.py` (machine-specific build paths),
  - files that are not valid UTF-8 (none in CPython 3.11 outside the dropped tests).
Each example: `path` (relative to the stdlib root, '/'-separated) and `text` (UTF-8).

Split BY FILE: `validation` holds the files whose `md5(path)` falls in 20 of 1,000 buckets
(about 2%); `train` holds the rest. Assignment depends only on the path, so a file keeps its
split when other files change.

The stdlib differs between Python versions (and slightly between patch releases), so the
builder config is named for the exact version (e.g. `py3_11_7`) and lives in its own folder.
Numbers on this dataset are comparable only between runs on the same Python version.
"""
from __future__ import annotations

import fnmatch
import os
import sys
import sysconfig

import tensorflow_datasets as tfds

from common.data.builders import base
from common.data.builders import splits

EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__", "test", "tests",
                           "idle_test"})
EXCLUDED_FILES = ("_sysconfigdata_*.py",)
VALIDATION_BUCKETS = 20  # of 1,000: ~2%


def python_config_name() -> str:
  v = sys.version_info
  return f"py{v.major}_{v.minor}_{v.micro}"


def stdlib_files(root: str | None = None) -> list[str]:
  """Sorted '/'-separated paths, relative to the stdlib root, of the files this dataset keeps."""
  root = root or sysconfig.get_paths()["stdlib"]
  found = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS)
    for name in filenames:
      if name.endswith(".py") and not any(fnmatch.fnmatch(name, p) for p in EXCLUDED_FILES):
        rel = os.path.relpath(os.path.join(dirpath, name), root)
        found.append(rel.replace(os.sep, "/"))
  return sorted(found)


def split_of(path: str) -> str:
  return "validation" if splits.hash_bucket(path) < VALIDATION_BUCKETS else "train"


class PystdlibText(base.LocalBuilder, skip_registration=True):
  """Python standard library sources; one builder config per Python version."""

  BUILDER_CONFIGS = [tfds.core.BuilderConfig(
      name=python_config_name(), description=f"Python {sys.version.split()[0]} stdlib")]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info({"path": tfds.features.Text(), "text": tfds.features.Text()})

  def _split_generators(self, dl_manager):
    del dl_manager  # The data is this machine's Python installation.
    root = sysconfig.get_paths()["stdlib"]
    files = stdlib_files(root)
    return {
        split: self._generate_examples(root, [f for f in files if split_of(f) == split])
        for split in ("train", "validation")
    }

  def _generate_examples(self, root, files):
    for rel in files:
      with open(os.path.join(root, *rel.split("/")), "rb") as f:
        raw = f.read()
      try:
        text = raw.decode("utf-8")
      except UnicodeDecodeError:
        continue
      yield rel, {"path": rel, "text": text}
