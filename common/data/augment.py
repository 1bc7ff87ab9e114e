"""Per-example image augmentations, chosen by name from `config.data.augment`.

An op takes (image float32 [H, W, C] in [0, 1], already resized, rng, data_config) and returns
an image of the same shape. 'inception_crop' is the exception: a random-resized-crop of the
decoded image, done by image_pipeline before resizing (see GEOMETRY_OPS). `rng` is seeded
from (seed, process, example position), so results do not depend on worker or thread counts.
Projects add ops with:

  @common.data.augment.register("my_op")
  def my_op(image, rng, data_config): ...

(RandAugment would register here; batch-level ops such as Mixup/CutMix are not supported yet.)
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

AugmentFn = Callable[[np.ndarray, np.random.Generator, Any], np.ndarray]
_REGISTRY: dict[str, AugmentFn] = {}


def register(name: str, *, override: bool = False) -> Callable[[AugmentFn], AugmentFn]:
  def deco(fn: AugmentFn) -> AugmentFn:
    if name in _REGISTRY and not override:
      raise ValueError(f"augment op {name!r} is already registered; pass override=True.")
    _REGISTRY[name] = fn
    return fn
  return deco


# Ops that change the image geometry BEFORE resizing (so they cannot take the resized image):
# image_pipeline applies them itself, first, whatever their position in `augment`.
GEOMETRY_OPS = ("inception_crop",)


def names() -> list[str]:
  return sorted(set(_REGISTRY) | set(GEOMETRY_OPS))


def get(name: str) -> AugmentFn:
  if name in GEOMETRY_OPS:
    raise ValueError(f"augment op {name!r} runs before resizing (common.data.image_pipeline); "
                     "it has no per-image function.")
  if name not in _REGISTRY:
    raise ValueError(f"config.data.augment names {name!r}; allowed: {names()} "
                     "(projects add ops with common.data.augment.register).")
  return _REGISTRY[name]


def crop_padding(data_config: Any, size: int) -> int:
  return int(data_config.get("crop_padding", 0)) or max(1, size // 8)


@register("random_crop")
def random_crop(image: np.ndarray, rng: np.random.Generator, data_config: Any) -> np.ndarray:
  """Zero-pad by crop_padding on each side, then crop back to the original size (CIFAR)."""
  h, w, _ = image.shape
  pad = crop_padding(data_config, min(h, w))
  padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
  y, x = rng.integers(0, 2 * pad + 1, size=2)
  return padded[y:y + h, x:x + w]


@register("flip")
@register("flip_lr")
def flip(image: np.ndarray, rng: np.random.Generator, data_config: Any) -> np.ndarray:
  """Horizontal flip with probability 1/2."""
  del data_config
  return image[:, ::-1] if rng.random() < 0.5 else image


@register("noise")
def noise(image: np.ndarray, rng: np.random.Generator, data_config: Any) -> np.ndarray:
  """Additive Gaussian noise with std `noise_std`, clipped back to [0, 1]."""
  std = float(data_config.get("noise_std", 0.1))
  return np.clip(image + rng.normal(0.0, std, image.shape).astype(np.float32), 0.0, 1.0)
