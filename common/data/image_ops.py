"""Per-example image preprocessing: decoding, resizing, channel conversion, crops, normalising.

Geometry, chosen by `config.data.preprocess` and the 'inception_crop' augment op:
  'simple'          decoded uint8 arrays (demo sets, CIFAR): resize to image_size (bilinear).
  'imagenet'        encoded JPEG bytes (or arrays): resize the shorter side to
                    image_size / crop_fraction, then centre-crop (the eval transform).
  'inception_crop'  (train only, either preprocess) Inception random-resized-crop.
RandAugment / Mixup are not implemented: RandAugment would be an op in common.data.augment,
Mixup a batch-level step after batching in image_pipeline.
"""
from __future__ import annotations

import io
import math
from typing import Any, Sequence

import numpy as np
from PIL import Image

_RESAMPLE = Image.BILINEAR
# Config name -> PIL filter ('bicubic' is what timm/DeiT-style official vision code uses).
INTERPOLATIONS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def to_hwc(image: np.ndarray) -> np.ndarray:
  image = np.asarray(image)
  return image[..., None] if image.ndim == 2 else image


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
  """[H, W, C] -> [H, W, channels]; 0 keeps C. Grey->RGB repeats; RGB->grey uses BT.601 weights."""
  c = image.shape[-1]
  if not channels or channels == c:
    return image
  if c == 1 and channels == 3:
    return np.repeat(image, 3, axis=-1)
  if c == 3 and channels == 1:
    grey = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(grey), 0, 255).astype(image.dtype)[..., None]
  raise ValueError(f"config.data.channels={channels} cannot be made from {c}-channel images; "
                   "allowed: 1 <-> 3, or 0 to keep the dataset's channels.")


def _pil(image: np.ndarray) -> Image.Image:
  return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _array(img: Image.Image, channels: int) -> np.ndarray:
  out = np.asarray(img, np.uint8)
  return out[..., None] if out.ndim == 2 else out[..., :channels]


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """uint8 [H, W, C] -> [height, width, C], bilinear (PIL); unchanged if already that size."""
  if image.shape[:2] == (height, width):
    return image
  return _array(_pil(image).resize((width, height), _RESAMPLE), image.shape[-1])


def normalize(image01: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
  mean = np.asarray(mean, np.float32)
  std = np.asarray(std, np.float32)
  return ((image01 - mean) / std).astype(np.float32)


def decode(data: bytes) -> Image.Image:
  """An RGB PIL image from encoded (JPEG, PNG, ...) bytes."""
  with Image.open(io.BytesIO(bytes(data))) as img:
    return img.convert("RGB")


def random_resized_crop(img: Image.Image, size: int, rng: np.random.Generator, *,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        attempts: int = 10, resample: int = _RESAMPLE) -> Image.Image:
  """Inception crop: a box of random area fraction and aspect ratio, resized to size x size.

  After `attempts` misses, falls back to the largest centred box with the aspect ratio clipped
  to `ratio` (as torchvision does).
  """
  w, h = img.size
  area = w * h
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(attempts):
    target = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(*log_ratio))
    cw = int(round(math.sqrt(target * aspect)))
    ch = int(round(math.sqrt(target / aspect)))
    if 0 < cw <= w and 0 < ch <= h:
      x = int(rng.integers(0, w - cw + 1))
      y = int(rng.integers(0, h - ch + 1))
      return img.resize((size, size), resample, box=(x, y, x + cw, y + ch))
  in_ratio = w / h
  if in_ratio < ratio[0]:
    cw, ch = w, int(round(w / ratio[0]))
  elif in_ratio > ratio[1]:
    cw, ch = int(round(h * ratio[1])), h
  else:
    cw, ch = w, h
  x, y = (w - cw) // 2, (h - ch) // 2
  return img.resize((size, size), resample, box=(x, y, x + cw, y + ch))


def resize_center_crop(img: Image.Image, size: int, crop_fraction: float, *,
                       resample: int = _RESAMPLE) -> Image.Image:
  """Shorter side to round(size / crop_fraction), then the central size x size."""
  w, h = img.size
  short = int(round(size / crop_fraction))
  if w <= h:
    nw, nh = short, max(short, int(round(h * short / w)))
  else:
    nw, nh = max(short, int(round(w * short / h))), short
  img = img.resize((nw, nh), resample)
  x, y = (nw - size) // 2, (nh - size) // 2
  return img.crop((x, y, x + size, y + size))


def _keeps_channels(data: Any) -> int:
  """Channels to return: encoded images are RGB; arrays keep theirs."""
  if isinstance(data, (bytes, bytearray, np.bytes_)):
    return 3
  return to_hwc(np.asarray(data)).shape[-1]


def _open(data: Any) -> Image.Image:
  """A PIL image of encoded bytes (as RGB) or of a uint8 array (grey stays grey)."""
  if isinstance(data, (bytes, bytearray, np.bytes_)):
    return decode(data)
  return _pil(to_hwc(np.asarray(data, np.uint8)))


def inception_crop(data: Any, height: int, width: int, rng: np.random.Generator, *,
                   scale: tuple[float, float] = (0.08, 1.0),
                   resample: int = _RESAMPLE) -> np.ndarray:
  """Random-resized-crop of encoded bytes or an array to uint8 [height, width, C]."""
  if height != width:
    raise ValueError(f"inception_crop makes square images; got {height}x{width}.")
  img = random_resized_crop(_open(data), height, rng, scale=tuple(scale), resample=resample)
  return _array(img, _keeps_channels(data))


def decode_resize_center_crop(data: Any, height: int, width: int, crop_fraction: float, *,
                              resample: int = _RESAMPLE) -> np.ndarray:
  """ImageNet eval geometry for encoded bytes or an array -> uint8 [height, width, C]."""
  if height != width:
    raise ValueError(f"centre crops are square; got {height}x{width}.")
  img = resize_center_crop(_open(data), height, crop_fraction, resample=resample)
  return _array(img, _keeps_channels(data))
