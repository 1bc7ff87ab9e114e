"""The I-JEPA multi-block mask collator as a seeded numpy transform (official semantics).

Official: src/masks/multiblock.py `MaskCollator` (facebookresearch/ijepa@52c1ae95). Per batch:
  1. one target block size (scale in pred_mask_scale, aspect in aspect_ratio) and one context block
     size (scale in enc_mask_scale, aspect 1) are drawn from a generator seeded per step;
  2. per image, `npred` target blocks at random positions, then `nenc` context blocks restricted to
     the complement of that image's targets (unless allow_overlap);
  3. every index list is truncated to the shortest one in the batch, so the arrays are rectangular.
Quirks kept: one uniform draw sets both the scale and the aspect ratio (L64-71); the block's
top-left corner is drawn from [0, grid - size) with an exclusive upper end (L88-89), so a block
never touches the last row/column; a block is valid only with *more than* min_keep patches (L100);
when 20 tries fail, the context drops its last remaining target constraint (L75-79, L101-106).

Differences: the official code can loop forever (a target block with at most min_keep patches);
here that raises ValueError with the numbers. Randomness comes from numpy Generators: with
`__call__(batch_size, step)` both streams derive from (seed, step); as a grain
RandomMapTransform the per-batch generator that grain supplies is used. The official code's torch
RNG streams are not reproduced (golden cases ship their masks).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import numpy as np

try:  # grain is a runtime dependency, but the collator itself needs only numpy.
  import grain.python as _grain
  _RandomMapBase = _grain.RandomMapTransform
except ImportError:  # pragma: no cover
  _RandomMapBase = object

logger = logging.getLogger(__name__)

# Official og_timeout (multiblock.py L82): failed tries before one constraint is dropped.
TRIES_PER_RELAXATION = 20


def _pair(name: str, value: Sequence[float], lo: float, hi: float | None) -> tuple[float, float]:
  try:
    a, b = (float(v) for v in value)
  except (TypeError, ValueError):
    raise ValueError(f"{name}={value!r}; allowed: a pair (min, max).") from None
  if not (lo < a <= b and (hi is None or b <= hi)):
    upper = "inf" if hi is None else hi
    raise ValueError(f"{name}={value!r}; allowed: {lo} < min <= max <= {upper}.")
  return a, b


class MultiBlockMaskCollator(_RandomMapBase):
  """Samples (masks_enc, masks_pred) index arrays for one batch.

  Args (official names and defaults): input_size (int or (H, W) pixels), patch_size, enc_mask_scale,
    pred_mask_scale, aspect_ratio, nenc, npred, min_keep, allow_overlap.
    seed: base seed for `__call__(batch_size, step)`.
    image_key: the batch entry whose leading dim is the batch size (grain use).

  Outputs: masks_enc int32 (nenc, B, K_enc) and masks_pred int32 (npred, B, K_pred); indices are
  row-major patch numbers, ascending within each block.
  """

  def __init__(self, input_size: Any = (224, 224), patch_size: int = 16,
               enc_mask_scale: Sequence[float] = (0.2, 0.8),
               pred_mask_scale: Sequence[float] = (0.2, 0.8),
               aspect_ratio: Sequence[float] = (0.3, 3.0), nenc: int = 1, npred: int = 2,
               min_keep: int = 4, allow_overlap: bool = False, *, seed: int = 0,
               image_key: str = "image"):
    if isinstance(input_size, int):
      input_size = (input_size, input_size)
    if (not isinstance(patch_size, int) or patch_size <= 0
        or any(int(s) < 2 * patch_size for s in input_size)):
      raise ValueError(f"input_size={input_size!r}, patch_size={patch_size!r}; allowed: a "
                       "positive patch_size giving a grid of at least 2x2 patches.")
    self.height, self.width = (int(s) // patch_size for s in input_size)
    self.enc_mask_scale = _pair("enc_mask_scale", enc_mask_scale, 0.0, 1.0)
    self.pred_mask_scale = _pair("pred_mask_scale", pred_mask_scale, 0.0, 1.0)
    self.aspect_ratio = _pair("aspect_ratio", aspect_ratio, 0.0, None)
    for name, value, low in (("nenc", nenc, 1), ("npred", npred, 1), ("min_keep", min_keep, 0)):
      if not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r}; allowed: an integer >= {low}.")
    self.nenc, self.npred, self.min_keep = nenc, npred, min_keep
    self.allow_overlap = bool(allow_overlap)
    self.seed, self.image_key = int(seed), image_key

  # -- block sizes ---------------------------------------------------------------------------

  def block_size(self, rng: np.random.Generator, scale: tuple[float, float],
                 aspect: tuple[float, float]) -> tuple[int, int]:
    """(h, w) of a block; official _sample_block_size (multiblock.py L61-78)."""
    u = float(rng.random())
    max_keep = int(self.height * self.width * (scale[0] + u * (scale[1] - scale[0])))
    ar = aspect[0] + u * (aspect[1] - aspect[0])  # the same draw: official quirk
    h = int(round(math.sqrt(max_keep * ar)))
    w = int(round(math.sqrt(max_keep / ar)))
    return min(h, self.height - 1), min(w, self.width - 1)

  # -- one block -----------------------------------------------------------------------------

  def block_mask(self, rng: np.random.Generator, size: tuple[int, int],
                 acceptable: Sequence[np.ndarray] | None = None, *, what: str = "block"):
    """Returns (indices, complement) of one block; official _sample_block_mask (L80-115)."""
    h, w = size
    if h * w <= self.min_keep:
      raise ValueError(
          f"{what} block of {h}x{w}={h * w} patches can never hold more than min_keep="
          f"{self.min_keep} patches (grid {self.height}x{self.width}); lower min_keep below "
          f"{h * w} or raise the mask scale.")
    regions = list(acceptable or [])
    # Each relaxation drops one constraint; once none is left the bare block (h*w > min_keep)
    # always succeeds, so this bound is never reached unless the invariants above break.
    max_attempts = TRIES_PER_RELAXATION * (len(regions) + 2)
    tries = 0
    for attempt in range(1, max_attempts + 1):
      top = int(rng.integers(0, self.height - h))
      left = int(rng.integers(0, self.width - w))
      mask = np.zeros((self.height, self.width), np.int32)
      mask[top:top + h, left:left + w] = 1
      for region in regions[:max(len(regions) - tries, 0)]:
        mask *= region
      idx = np.flatnonzero(mask).astype(np.int32)
      if idx.size > self.min_keep:
        complement = np.ones((self.height, self.width), np.int32)
        complement[top:top + h, left:left + w] = 0
        return idx, complement
      if attempt % TRIES_PER_RELAXATION == 0:
        tries += 1
        logger.warning("%s: no valid mask in %d tries; dropping an acceptable region [%d]",
                       what, attempt, tries)
    raise ValueError(f"{what}: no block of {h}x{w} patches with more than min_keep="
                     f"{self.min_keep} patches in {max_attempts} tries ({len(regions)} "
                     f"constraints, grid {self.height}x{self.width}).")

  # -- one batch -----------------------------------------------------------------------------

  def sample(self, batch_size: int, size_rng: np.random.Generator,
             pos_rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(masks_enc, masks_pred) for a batch; sizes from size_rng, positions from pos_rng."""
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
      raise ValueError(f"batch_size={batch_size!r}; allowed: an integer >= 1.")
    pos_rng = size_rng if pos_rng is None else pos_rng
    p_size = self.block_size(size_rng, self.pred_mask_scale, self.aspect_ratio)
    e_size = self.block_size(size_rng, self.enc_mask_scale, (1.0, 1.0))
    preds, encs = [], []
    for _ in range(batch_size):
      image_preds, complements = [], []
      for _ in range(self.npred):
        idx, comp = self.block_mask(pos_rng, p_size, what="target")
        image_preds.append(idx)
        complements.append(comp)
      regions = None if self.allow_overlap else complements
      encs.append([self.block_mask(pos_rng, e_size, regions, what="context")[0]
                   for _ in range(self.nenc)])
      preds.append(image_preds)
    return self._truncate(encs), self._truncate(preds)

  @staticmethod
  def _truncate(per_image: list[list[np.ndarray]]) -> np.ndarray:
    keep = min(len(m) for masks in per_image for m in masks)
    # (B, M, K) -> (M, B, K): mask-major like the official default_collate of the lists.
    return np.stack([[m[:keep] for m in masks] for masks in per_image]).transpose(1, 0, 2)

  def __call__(self, batch_size: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks for training step `step`, reproducible from (seed, step) alone.

    Like the official collator's per-step generator (seed = iteration counter), but positions also
    come from a seeded stream instead of the process-global RNG.
    """
    if not isinstance(step, (int, np.integer)) or step < 0:
      raise ValueError(f"step={step!r}; allowed: an integer >= 0.")
    size_rng = np.random.default_rng([self.seed, int(step), 0])
    pos_rng = np.random.default_rng([self.seed, int(step), 1])
    return self.sample(batch_size, size_rng, pos_rng)

  def random_map(self, element: dict, rng: np.random.Generator) -> dict:
    """grain RandomMapTransform hook (apply after batching): adds masks_enc and masks_pred."""
    if self.image_key not in element:
      raise ValueError(f"batch has no {self.image_key!r} entry (keys {sorted(element)}); set "
                       "image_key to the entry whose leading dim is the batch size.")
    masks_enc, masks_pred = self.sample(int(np.shape(element[self.image_key])[0]), rng)
    return {**element, "masks_enc": masks_enc, "masks_pred": masks_pred}
