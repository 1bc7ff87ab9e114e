"""The data entry points the trainer and `Task` call.

  train_iterator(data_config, *, seed, process_index, process_count, batch_size)
      Infinite per-process batches: a `grain.DatasetIterator` with get_state()/set_state().
      Save/restore it with Orbax through grain's handler:
        ocp.args.Composite(..., data=grain.checkpoint.CheckpointSave(iterator))
        ocp.args.Composite(..., data=grain.checkpoint.CheckpointRestore(iterator))
  eval_iterator(data_config, *, split, process_index, process_count, batch_size)
      One ordered, finite pass; every batch has float32 'mask' [B] (0 marks padding) and all
      processes yield the same number of batches. No augmentation and no label noise, even
      on the train split.
  validate(data_config)
      Field and value checks (and, for 'tfds:' names, that the dataset is prepared); returns
      the resolved config. Hand-written configs with only some fields are completed with the
      defaults of common.data.config (config.resolve).

Helpers for model construction: num_classes, vocab_size, batch_spec.
Batch formats: see common.data.config.
"""
from __future__ import annotations

from typing import Iterator

import grain
import numpy as np

from common.data import checks
from common.data import image_pipeline
from common.data import recall
from common.data import sources
from common.data import superposition
from common.data import text_pipeline
from common.data import tokenizers

validate = checks.validate

# The data kinds generated on the fly, by their modules (same train/eval/batch_spec functions).
_SYNTHETIC = {"recall": recall, "superposition": superposition}


def _check_call(data_config, process_index: int, process_count: int, batch_size: int):
  """The resolved, validated config, after checking the call's own arguments."""
  cfg = validate(data_config)
  for field, value in (("process_count", process_count), ("batch_size", batch_size)):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
      raise ValueError(f"{field}={value!r} is not allowed: a positive integer.")
  if isinstance(process_index, bool) or not isinstance(process_index, int) or not (
      0 <= process_index < process_count):
    raise ValueError(f"process_index={process_index!r} is not allowed: an integer in "
                     f"[0, {process_count}).")
  return cfg


def train_iterator(data_config, *, seed: int, process_index: int, process_count: int,
                   batch_size: int) -> grain.DatasetIterator:
  """Infinite, shuffled (per epoch, from `seed`), process-sharded, augmented batches.

  `batch_size` is this process's share. The result depends on (config, seed, process index,
  process count, batch size) only: not on worker or thread counts.
  """
  cfg = _check_call(data_config, process_index, process_count, batch_size)
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
    raise ValueError(f"seed={seed!r} is not allowed: an integer.")
  module = dict(_SYNTHETIC, image=image_pipeline).get(cfg.kind, text_pipeline)
  ds = module.train_dataset(cfg, seed=int(seed), process_index=process_index,
                            process_count=process_count, batch_size=batch_size)
  return iter(ds)


def eval_iterator(data_config, *, split: str, process_index: int, process_count: int,
                  batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """One ordered pass over `split`, sharded by process, padded, with a 'mask' in every batch."""
  cfg = _check_call(data_config, process_index, process_count, batch_size)
  if not isinstance(split, str) or not split:
    raise ValueError(f"split={split!r} is not allowed: a split name such as "
                     f"{cfg.eval_split!r}.")
  if cfg.kind == "image":
    return iter(image_pipeline.eval_dataset(cfg, split=split, process_index=process_index,
                                            process_count=process_count, batch_size=batch_size))
  module = _SYNTHETIC.get(cfg.kind, text_pipeline)
  return module.eval_batches(cfg, split=split, process_index=process_index,
                             process_count=process_count, batch_size=batch_size)


def num_classes(data_config) -> int:
  """Classes of an image dataset (config value if set, else the dataset's ClassLabel)."""
  cfg = validate(data_config)
  _, info = sources.open_split(cfg, cfg.train_split)
  return image_pipeline.num_classes(cfg, info)


def vocab_size(data_config) -> int:
  """Vocabulary size of a text config's tokenizer, sentinels included (recall: its tokens)."""
  cfg = validate(data_config)
  if cfg.kind == "recall":
    return recall.from_config(cfg).vocab_size
  return tokenizers.from_config(cfg).vocab_size


def batch_spec(data_config, batch_size: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """{key: (shape, dtype)} of a training batch, without reading any examples."""
  cfg = validate(data_config)
  if cfg.kind == "image":
    _, info = sources.open_split(cfg, cfg.train_split)
    return {"image": ((batch_size,) + image_pipeline.output_shape(cfg, info), np.dtype("float32")),
            "label": ((batch_size,), np.dtype("int32"))}
  if cfg.kind in _SYNTHETIC:
    return _SYNTHETIC[cfg.kind].batch_spec(cfg, batch_size)
  if cfg.task_format == "lm":
    shape = (batch_size, cfg.seq_len)
    return {"inputs": (shape, np.dtype("int32")), "targets": (shape, np.dtype("int32")),
            "weights": (shape, np.dtype("float32"))}
  enc = (batch_size, cfg.inputs_length)
  dec = (batch_size, text_pipeline.target_length(cfg))
  return {"encoder_input_tokens": (enc, np.dtype("int32")),
          "decoder_input_tokens": (dec, np.dtype("int32")),
          "decoder_target_tokens": (dec, np.dtype("int32")),
          "decoder_loss_weights": (dec, np.dtype("float32"))}
