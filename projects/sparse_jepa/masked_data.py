"""Batches with I-JEPA multi-block masks: the common.data pipeline plus `masks_enc`/`masks_pred`.

The masks are stored example-major, int32 (B, nenc, Kc) and (B, npred, Kp), because the trainer
shards every batch entry along its leading axis; `model_masks` turns them into the collator's and
the model's mask-major (M, B, K).

Masks depend on (mask seed, batch number) only, never on the data order or worker count, and the
batch number is part of the iterator's checkpointed state: a resumed run draws the very masks the
uninterrupted run would have drawn. Every process draws the masks of the whole *global* batch and
keeps its own rows, because the collator truncates index lists to the batch minimum and the
global arrays need one length K on every host (the official per-GPU collators each truncate to
their own minimum, which SPMD cannot express).
"""
from __future__ import annotations

from typing import Any, Iterator

import ml_collections
import numpy as np

from projects.sparse_jepa.masks import MultiBlockMaskCollator

# Evaluation masks use their own stream, fixed across training seeds, so runs with different
# seeds are scored on the same masks.
EVAL_MASK_SEED = 20_230_613


def bucket_length(keep: int, base: float) -> int:
  """`keep` rounded down to the ladder floor(base**i) (base 0: unchanged, the official length).

  Why: jit compiles once per mask length, and the official lengths (the batch minimum) vary from
  step to step, so a run would recompile for most of its first steps. Rounding down to a ladder
  of ratio `base` bounds the number of programs by the ladder's rungs in the lengths' range, at
  the price of dropping at most a fraction 1 - 1/base of the kept patches (a deviation from the
  official collator, documented in README.md).
  """
  if not base:
    return keep
  if base <= 1.0:
    raise ValueError(f"config.model.mask.keep_bucket={base!r}; allowed: 0 (off) or > 1.")
  rung, value = 1, 1.0
  while int(value * base) <= keep:
    value *= base
    rung = max(rung, int(value))
  return rung


def collator_from_config(config: ml_collections.ConfigDict, image_size: int, *,
                         seed: int) -> MultiBlockMaskCollator:
  """The collator of `config.model.mask` for image_size x image_size images.

  Its fields are checked by config.from_config (config.MASK_FIELDS), which the Task runs first.
  """
  mask = config.model.mask
  return MultiBlockMaskCollator(
      input_size=image_size, patch_size=config.model.patch_size,
      enc_mask_scale=tuple(mask.enc_mask_scale), pred_mask_scale=tuple(mask.pred_mask_scale),
      aspect_ratio=tuple(mask.aspect_ratio), nenc=mask.nenc, npred=mask.npred,
      min_keep=mask.min_keep, allow_overlap=mask.allow_overlap, seed=seed)


def keep_bucket(config: ml_collections.ConfigDict) -> float:
  base = float(config.model.mask.get("keep_bucket", 0.0))
  bucket_length(1, base)  # validates
  return base


def model_masks(masks):
  """(B, M, K) batch layout -> (M, B, K), the layout of the collator and of model.py."""
  return masks.transpose(1, 0, 2)


class MaskedBatches:
  """Wraps a per-process batch iterator; adds this process's rows of the global batch's masks.

  Checkpointable like the grain iterator it wraps: `get_state()` is JSON-able and holds the
  wrapped iterator's state and the number of batches drawn so far.
  """

  def __init__(self, batches: Iterator[dict], collator: MultiBlockMaskCollator, *,
               process_index: int = 0, process_count: int = 1, keep_bucket: float = 0.0):
    self._batches = batches
    self._bucket = keep_bucket
    self._collator = collator
    self._process_index, self._process_count = process_index, process_count
    self.step = 0

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, Any]:
    batch = next(self._batches)
    local = int(np.shape(batch["image"])[0])
    masks_enc, masks_pred = self._collator(local * self._process_count, self.step)
    rows = slice(self._process_index * local, (self._process_index + 1) * local)
    self.step += 1
    k_enc = bucket_length(masks_enc.shape[-1], self._bucket)
    k_pred = bucket_length(masks_pred.shape[-1], self._bucket)
    # Example-major (B, M, K): the trainer shards every batch entry along its leading axis.
    return {**batch, "masks_enc": masks_enc[:, rows, :k_enc].transpose(1, 0, 2),
            "masks_pred": masks_pred[:, rows, :k_pred].transpose(1, 0, 2)}

  def get_state(self) -> dict[str, Any]:
    return {"pipeline": self._batches.get_state(), "mask_step": self.step}

  def set_state(self, state: dict[str, Any]) -> None:
    if not isinstance(state, dict) or "mask_step" not in state:
      raise ValueError(f"data iterator state {state!r} was not written by MaskedBatches (no "
                       "'mask_step'); was the checkpoint made by another task?")
    self._batches.set_state(state["pipeline"])
    self.step = int(state["mask_step"])
