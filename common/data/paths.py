"""Where datasets, tokenizer models and build locks live on disk.

The default is `$SPARSE_DATA_DIR` if set, else `~/.cache/sparse_monorepo`; a non-empty
`config.data.data_dir` overrides both. Demo datasets are built there on first use and
paper datasets (`tfds:<name>`) are expected there, prepared in array_record format.
"""
from __future__ import annotations

import os
from typing import Any

ENV_VAR = "SPARSE_DATA_DIR"
_FALLBACK = os.path.join("~", ".cache", "sparse_monorepo")


def default_data_dir() -> str:
  """`$SPARSE_DATA_DIR` if set and non-empty, else `~/.cache/sparse_monorepo` (expanded)."""
  return os.path.abspath(os.path.expanduser(os.environ.get(ENV_VAR) or _FALLBACK))


def data_dir(data_config: Any = None) -> str:
  """The data dir for a data config: its non-empty `data_dir`, else the default."""
  explicit = data_config.get("data_dir", "") if data_config is not None else ""
  if explicit:
    return os.path.abspath(os.path.expanduser(explicit))
  return default_data_dir()


def is_explicit(data_config: Any) -> bool:
  """Whether the config names its own data dir (then no other place is searched)."""
  return bool(data_config is not None and data_config.get("data_dir", ""))


def manual_dir(data_config: Any) -> str | None:
  """The config's manual-download dir, or None (TFDS then uses `<data_dir>/downloads/manual`)."""
  value = data_config.get("manual_dir", "") if data_config is not None else ""
  return os.path.abspath(os.path.expanduser(value)) if value else None


def tokenizer_dir(data_config: Any = None) -> str:
  """Where locally trained SentencePiece models are written."""
  return os.path.join(data_dir(data_config), "tokenizers")


def lock_path(root: str, name: str) -> str:
  """A per-dataset lock file beside the dataset (so concurrent builders serialise)."""
  return os.path.join(root, f".{name.replace('/', '_')}.lock")
