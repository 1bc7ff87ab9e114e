"""`validate(data_config)`: every field checked before anything is built or compiled.

Errors name the field, the value and what is allowed. For 'tfds:' datasets this also opens the
dataset's metadata, so a missing dataset fails here with a DatasetNotFoundError.
"""
from __future__ import annotations

import numbers
import os
from typing import Any, Callable

import ml_collections

from common.data import augment
from common.data import recall
from common.data import config as config_lib
from common.data import sources
from common.data import superposition
from common.data import span_corruption
from common.data import tokenizers

PREPROCESS = ("simple", "imagenet")
TASK_FORMATS = ("lm", "span_corruption")


def _fail(field: str, value: Any, allowed: str):
  raise ValueError(f"config.data.{field}={value!r} is not allowed: {allowed}.")


def _int(cfg, field: str, ok: Callable[[int], bool], allowed: str) -> int:
  value = cfg.get(field)
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not ok(int(value)):
    _fail(field, value, allowed)
  return int(value)


def _float(cfg, field: str, ok: Callable[[float], bool], allowed: str) -> float:
  value = cfg.get(field)
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok(float(value)):
    _fail(field, value, allowed)
  return float(value)


def _str(cfg, field: str) -> str:
  value = cfg.get(field)
  if not isinstance(value, str):
    _fail(field, value, "expected a string")
  return value


def validate(data_config) -> ml_collections.ConfigDict:
  """Raises ValueError (or DatasetNotFoundError) if `data_config` cannot work.

  Returns the resolved config (defaults filled in, see `config.resolve`).
  """
  cfg = config_lib.resolve(data_config)
  name = cfg.get("name")
  if not isinstance(name, str) or not name:
    _fail("name", name, "a demo dataset name or 'tfds:<tfds name>'")
  kind = cfg.kind
  if kind == "recall":
    return _validate_recall(cfg)
  if kind == "superposition":
    return _validate_superposition(cfg)
  if sources.is_tfds(name):
    if not sources.tfds_name(name):
      _fail("name", name, "'tfds:' must be followed by a TFDS dataset name, e.g. 'tfds:cifar100'")
  else:
    from common.data import builders  # pylint: disable=g-import-not-at-top
    spec = builders.get(name)
    if spec.kind != kind:
      _fail("kind", kind, f"dataset {name!r} holds {spec.kind} data")
  for field in ("data_dir", "manual_dir"):
    _str(cfg, field)
  if not isinstance(cfg.get("prepare"), bool):
    _fail("prepare", cfg.get("prepare"), "True or False")
  _int(cfg, "num_workers", lambda v: v >= 0, "an integer >= 0 (0: no worker processes)")
  _int(cfg, "read_threads", lambda v: v >= 0, "an integer >= 0")
  _int(cfg, "prefetch", lambda v: v >= 1, "an integer >= 1")

  if kind == "image":
    _validate_image(cfg)
  else:
    _validate_text(cfg)
  _validate_splits(cfg)
  return cfg


def _validate_recall(cfg) -> ml_collections.ConfigDict:
  """The synthetic recall stream: generated, so only its shape and split names can be wrong."""
  if cfg.name != "recall":
    _fail("name", cfg.name, "'recall' with kind='recall'")
  for field in ("seq_len", "num_keys", "num_values", "num_fillers", "near_max", "far_min",
                "eval_examples"):
    _int(cfg, field, lambda v: v > 0, "a positive integer")
  _float(cfg, "near_fraction", lambda v: 0 <= v <= 1, "a fraction in [0, 1]")
  _int(cfg, "read_threads", lambda v: v >= 0, "an integer >= 0")
  _int(cfg, "prefetch", lambda v: v >= 1, "an integer >= 1")
  recall.from_config(cfg).check()
  for field in ("train_split", "eval_split"):
    if cfg[field] not in recall.SPLITS:
      _fail(field, cfg[field], f"one of {recall.SPLITS} for the recall stream")
  return cfg


def _validate_superposition(cfg) -> ml_collections.ConfigDict:
  """The synthetic features: generated, so only their shape and split names can be wrong."""
  if cfg.name != "superposition":
    _fail("name", cfg.name, "'superposition' with kind='superposition'")
  for field in ("num_features", "input_dim", "eval_examples"):
    _int(cfg, field, lambda v: v > 0, "a positive integer")
  _int(cfg, "directions_seed", lambda v: v >= 0, "an integer >= 0")
  _float(cfg, "density", lambda v: 0 < v < 1, "a probability in (0, 1)")
  superposition.from_config(cfg).check()
  for field in ("train_split", "eval_split"):
    if cfg[field] not in superposition.SPLITS:
      _fail(field, cfg[field], f"one of {superposition.SPLITS} for the superposition data")
  return cfg


def _validate_splits(cfg) -> None:
  for field in ("train_split", "eval_split"):
    split = _str(cfg, field)
    if not split:
      _fail(field, split, "a split name such as 'train', 'test' or 'validation'")
  if sources.is_tfds(cfg.name):
    allowed = sorted(sources.builder_for(cfg).info.splits)
  else:
    from common.data import builders  # pylint: disable=g-import-not-at-top
    allowed = list(builders.get(cfg.name).splits)
  for field in ("train_split", "eval_split"):
    if sources.split_base(cfg[field]) not in allowed:
      _fail(field, cfg[field], f"dataset {cfg.name!r} has splits {allowed} "
            "(TFDS slicing such as 'train[:90%]' is fine)")


def _validate_image(cfg) -> None:
  size = _int(cfg, "image_size", lambda v: v >= 0, "an integer >= 0 (0: native size)")
  channels = _int(cfg, "channels", lambda v: v in (0, 1, 3), "0 (native), 1 or 3")
  for field in ("mean", "std"):
    value = cfg.get(field)
    if (not isinstance(value, (tuple, list)) or len(value) not in (1, 3)
        or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)):
      _fail(field, value, "a tuple of 1 or 3 numbers (per channel)")
    if channels and len(value) not in (1, channels):
      _fail(field, value, f"1 value or one per channel (channels={channels})")
  if any(v <= 0 for v in cfg.std):
    _fail("std", cfg.std, "all values > 0")
  ops = cfg.get("augment")
  if isinstance(ops, str) or not isinstance(ops, (tuple, list)):
    _fail("augment", ops, f"a tuple of op names from {augment.names()}")
  for op in ops:
    if op not in augment.names():
      _fail("augment", ops, f"op names from {augment.names()} ({op!r} is not registered; "
            "projects add ops with common.data.augment.register)")
  _int(cfg, "crop_padding", lambda v: v >= 0, "an integer >= 0 (0: image_size // 8)")
  _float(cfg, "noise_std", lambda v: v >= 0, "a number >= 0")
  _int(cfg, "repeated_aug", lambda v: v == 0 or v >= 2, "0 (off) or the number of copies >= 2")
  _float(cfg, "label_noise", lambda v: 0 <= v <= 1, "a fraction in [0, 1]")
  _int(cfg, "label_noise_seed", lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)")
  _int(cfg, "num_classes", lambda v: v >= 0, "an integer >= 0 (0: from the dataset)")
  _str(cfg, "image_key")
  if not _str(cfg, "label_key") and cfg.label_noise:
    _fail("label_noise", cfg.label_noise, "0 when label_key='' (the dataset has no labels)")
  if cfg.get("preprocess") not in PREPROCESS:
    _fail("preprocess", cfg.get("preprocess"), f"one of {PREPROCESS}")
  _float(cfg, "crop_fraction", lambda v: 0 < v <= 1, "a fraction in (0, 1]")
  if cfg.get("interpolation", "bilinear") not in ("bilinear", "bicubic"):
    _fail("interpolation", cfg.get("interpolation"), "'bilinear' or 'bicubic'")
  scale = tuple(cfg.get("crop_scale", (0.08, 1.0)))
  if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
    _fail("crop_scale", scale, "(low, high) with 0 < low <= high <= 1")
  if cfg.preprocess == "imagenet" and not size:
    _fail("image_size", size, "> 0 when preprocess='imagenet' (images differ in size)")


def _validate_text(cfg) -> None:
  task = cfg.get("task_format")
  if task not in TASK_FORMATS:
    _fail("task_format", task, f"one of {TASK_FORMATS}")
  spec = cfg.get("tokenizer")
  if not isinstance(spec, str):
    _fail("tokenizer", spec, "'bytes', 'chess', 'sentencepiece:<vocab size or path>' or "
          "'bpe:<HF tokenizer folder>'")
  kind, arg = tokenizers.parse_spec(spec)
  if kind == "chess":
    # chess-GPT's 32-character vocabulary has no EOS and no room for sentinels.
    if task != "lm":
      _fail("task_format", task, "'lm' with tokenizer='chess' (span corruption needs sentinel "
            "ids, which the 32-character chess vocabulary does not have)")
    if cfg.get("extra_ids") != 0:
      _fail("extra_ids", cfg.get("extra_ids"), "0 with tokenizer='chess'")
  if kind == "bpe" and not os.path.isdir(arg):
    _fail("tokenizer", spec, f"an existing folder with tokenizer.json or vocab.json + merges.txt "
          f"({arg} does not exist)")
  if kind == "sentencepiece":
    if isinstance(arg, int) and arg < tokenizers.MIN_SENTENCEPIECE_VOCAB:
      _fail("tokenizer", spec, f"a vocab size >= {tokenizers.MIN_SENTENCEPIECE_VOCAB}")
    if isinstance(arg, str) and not os.path.isfile(arg):
      _fail("tokenizer", spec, f"an existing SentencePiece model file ({arg} does not exist) "
            "or a vocab size to train one")
  _int(cfg, "tokenizer_train_docs", lambda v: v > 0, "an integer > 0")
  extra = _int(cfg, "extra_ids", lambda v: v >= 0, "an integer >= 0")
  _str(cfg, "text_key")
  _int(cfg, "seq_len", lambda v: v > 0, "a positive integer")
  inputs_length = _int(cfg, "inputs_length", lambda v: v >= 3, "an integer >= 3")
  targets_length = _int(cfg, "targets_length", lambda v: v >= 0,
                        "an integer >= 0 (0: computed from inputs_length)")
  density = _float(cfg, "noise_density", lambda v: 0 < v < 1, "a fraction in (0, 1)")
  mean_span = _float(cfg, "mean_noise_span_length", lambda v: v >= 1, "a number >= 1")
  if task == "span_corruption":
    raw, needed = span_corruption.compute_lengths(inputs_length, density, mean_span)
    if targets_length and targets_length < needed:
      _fail("targets_length", targets_length,
            f">= {needed} (what inputs_length={inputs_length} needs), or 0 to compute it")
    spans = span_corruption.noise_counts(raw, density, mean_span)[1]
    if extra < spans:
      _fail("extra_ids", extra, f">= {spans} sentinels (noise spans in a {raw}-token chunk)")
