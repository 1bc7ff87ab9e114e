"""ImageNet training augmentations of the DeiT recipe: RandAugment and RandomErasing (timm).

Importing this module registers two per-example ops for `config.data.augment`:

  'randaugment'     timm `rand-m9-mstd0.5-inc1`: 2 ops drawn (with replacement) from the 15
                    'increasing' ops, each applied with probability 1/2 at a magnitude drawn
                    from N(9, 0.5) clipped to [0, 10]; geometric ops use bicubic resampling
                    and fill with the ImageNet mean pixel, as timm's create_transform sets.
  'random_erasing'  timm RandomErasing(probability=0.25, mode='pixel', max_count=1): one box
                    of 2-33 % of the area, aspect ratio in [0.3, 1/0.3] (log-uniform), filled
                    with per-pixel N(0, 1) noise *in normalised units*.

Other settings: `make_randaugment("rand-m7-n3-mstd0.5")` / `make_random_erasing(0.5)` return
ops that projects can register under their own names.

Differences from timm, by construction of the data layer: ops run on the [0, 1] float image
between resizing and normalisation, so RandAugment round-trips through uint8 (exact for
unmodified pixels, as timm works on uint8 PIL images too), and random erasing writes
mean + std * z so that the normalised pixel is exactly z, as timm's (which runs after
Normalize). Randomness comes from the data layer's per-example numpy Generator (so results
do not depend on worker counts), not Python's `random`.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from common.data import augment

LEVEL_DENOM = 10.0       # timm _LEVEL_DENOM: magnitudes live in [0, 10]
TRANSLATE_PCT = 0.45     # timm default hparams['translate_pct']
RECIPE_RANDAUGMENT = "rand-m9-mstd0.5-inc1"
RECIPE_ERASING_PROB = 0.25
_FILL_MEAN = (0.485, 0.456, 0.406)  # timm's img_mean hparam: the ImageNet mean pixel


def _negate(value: float, rng: np.random.Generator) -> float:
  """timm _randomly_negate: -v with probability 1/2."""
  return -value if rng.random() > 0.5 else value


# --- the ops on PIL images (uint8, mode 'L' or 'RGB') --------------------------------------

def _fill(img: Image.Image):
  pixel = tuple(int(round(255 * m)) for m in _FILL_MEAN)
  return pixel if img.mode == "RGB" else pixel[0]


def _affine(img: Image.Image, matrix: tuple) -> Image.Image:
  return img.transform(img.size, Image.AFFINE, matrix, resample=Image.BICUBIC,
                       fillcolor=_fill(img))


def _solarize_add(img: Image.Image, add: int, thresh: int = 128) -> Image.Image:
  lut = [min(255, i + add) if i < thresh else i for i in range(256)]
  return img.point(lut * len(img.getbands()))


def _posterize(img: Image.Image, bits: int) -> Image.Image:
  return img if bits >= 8 else ImageOps.posterize(img, bits)


# Each entry: name -> (level -> args (uses rng for random signs), apply(img, *args)).
def _enhance(kind):
  return lambda img, factor: getattr(ImageEnhance, kind)(img).enhance(factor)


_APPLY: dict[str, Callable[..., Image.Image]] = {
    "AutoContrast": lambda img: ImageOps.autocontrast(img),
    "Equalize": lambda img: ImageOps.equalize(img),
    "Invert": lambda img: ImageOps.invert(img),
    "Rotate": lambda img, deg: img.rotate(deg, resample=Image.BICUBIC, fillcolor=_fill(img)),
    "Posterize": _posterize,
    "PosterizeIncreasing": _posterize,
    "Solarize": lambda img, thresh: ImageOps.solarize(img, thresh),
    "SolarizeIncreasing": lambda img, thresh: ImageOps.solarize(img, thresh),
    "SolarizeAdd": _solarize_add,
    "Color": _enhance("Color"),
    "ColorIncreasing": _enhance("Color"),
    "Contrast": _enhance("Contrast"),
    "ContrastIncreasing": _enhance("Contrast"),
    "Brightness": _enhance("Brightness"),
    "BrightnessIncreasing": _enhance("Brightness"),
    "Sharpness": _enhance("Sharpness"),
    "SharpnessIncreasing": _enhance("Sharpness"),
    "ShearX": lambda img, f: _affine(img, (1, f, 0, 0, 1, 0)),
    "ShearY": lambda img, f: _affine(img, (1, 0, 0, f, 1, 0)),
    "TranslateXRel": lambda img, pct: _affine(img, (1, 0, pct * img.size[0], 0, 1, 0)),
    "TranslateYRel": lambda img, pct: _affine(img, (1, 0, 0, 0, 1, pct * img.size[1])),
}

_LEVEL: dict[str, Callable[[float, np.random.Generator], tuple]] = {
    "AutoContrast": lambda m, r: (),
    "Equalize": lambda m, r: (),
    "Invert": lambda m, r: (),
    "Rotate": lambda m, r: (_negate(m / LEVEL_DENOM * 30.0, r),),
    "Posterize": lambda m, r: (int(m / LEVEL_DENOM * 4),),
    "PosterizeIncreasing": lambda m, r: (4 - int(m / LEVEL_DENOM * 4),),
    "Solarize": lambda m, r: (int(m / LEVEL_DENOM * 256),),
    "SolarizeIncreasing": lambda m, r: (256 - int(m / LEVEL_DENOM * 256),),
    "SolarizeAdd": lambda m, r: (int(m / LEVEL_DENOM * 110),),
    **{k: (lambda m, r: (m / LEVEL_DENOM * 1.8 + 0.1,))
       for k in ("Color", "Contrast", "Brightness", "Sharpness")},
    **{f"{k}Increasing": (lambda m, r: (1.0 + _negate(m / LEVEL_DENOM * 0.9, r),))
       for k in ("Color", "Contrast", "Brightness", "Sharpness")},
    "ShearX": lambda m, r: (_negate(m / LEVEL_DENOM * 0.3, r),),
    "ShearY": lambda m, r: (_negate(m / LEVEL_DENOM * 0.3, r),),
    "TranslateXRel": lambda m, r: (_negate(m / LEVEL_DENOM * TRANSLATE_PCT, r),),
    "TranslateYRel": lambda m, r: (_negate(m / LEVEL_DENOM * TRANSLATE_PCT, r),),
}

# timm _RAND_TRANSFORMS and _RAND_INCREASING_TRANSFORMS, in timm's order.
RAND_TRANSFORMS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize",
                   "SolarizeAdd", "Color", "Contrast", "Brightness", "Sharpness", "ShearX",
                   "ShearY", "TranslateXRel", "TranslateYRel")
RAND_INCREASING_TRANSFORMS = tuple(
    f"{n}Increasing" if n in ("Posterize", "Solarize", "Color", "Contrast", "Brightness",
                              "Sharpness") else n for n in RAND_TRANSFORMS)


class RandAugment:
  """timm RandAugment from a config string such as 'rand-m9-mstd0.5-inc1'.

  Fields: m<magnitude> (default 10), n<num ops> (2), mstd<std of the magnitude noise> (0),
  mmax<upper clip> (10), inc<0|1> (increasing ops), p<op probability> (0.5).
  """

  def __init__(self, spec: str = RECIPE_RANDAUGMENT):
    parts = spec.split("-")
    if parts[0] != "rand":
      raise ValueError(f"randaugment spec={spec!r} is not allowed: it must start with 'rand' "
                       "(e.g. 'rand-m9-mstd0.5-inc1').")
    self.magnitude, self.num_ops, self.magnitude_std = 10.0, 2, 0.0
    self.magnitude_max, self.prob, increasing = LEVEL_DENOM, 0.5, False
    for part in parts[1:]:
      try:
        if part.startswith("mstd"):
          self.magnitude_std = float(part[4:])
        elif part.startswith("mmax"):
          self.magnitude_max = float(part[4:])
        elif part.startswith("inc"):
          increasing = bool(int(part[3:]))
        elif part.startswith("m"):
          self.magnitude = float(part[1:])
        elif part.startswith("n"):
          self.num_ops = int(part[1:])
        elif part.startswith("p"):
          self.prob = float(part[1:])
        else:
          raise ValueError(part)
      except ValueError:
        raise ValueError(f"randaugment spec={spec!r}: part {part!r} is not allowed; allowed "
                         "parts: m<float>, n<int>, mstd<float>, mmax<float>, inc<0|1>, "
                         "p<float>.") from None
    self.ops = RAND_INCREASING_TRANSFORMS if increasing else RAND_TRANSFORMS

  def _magnitude(self, rng: np.random.Generator) -> float:
    m = self.magnitude
    if self.magnitude_std == math.inf:
      m = rng.uniform(0.0, m)
    elif self.magnitude_std > 0:
      m = rng.normal(m, self.magnitude_std)
    return float(min(max(0.0, m), self.magnitude_max))

  def apply_pil(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
    for name in rng.choice(self.ops, self.num_ops, replace=True):
      if self.prob < 1.0 and rng.random() > self.prob:
        continue
      img = _APPLY[name](img, *_LEVEL[name](self._magnitude(rng), rng))
    return img

  def __call__(self, image: np.ndarray, rng: np.random.Generator, data_config: Any
               ) -> np.ndarray:
    """An `augment` op: float32 [H, W, C] in [0, 1] -> same, through uint8 PIL."""
    del data_config
    channels = image.shape[-1]
    if channels not in (1, 3):
      raise ValueError(f"randaugment needs 1 or 3 channels; got image shape {image.shape}.")
    pixels = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    out = np.asarray(self.apply_pil(img, rng), np.uint8).reshape(image.shape)
    return out.astype(np.float32) / 255.0


def make_randaugment(spec: str = RECIPE_RANDAUGMENT) -> augment.AugmentFn:
  return RandAugment(spec)


def erase_box(height: int, width: int, rng: np.random.Generator, *, min_area: float = 0.02,
              max_area: float = 1 / 3, min_aspect: float = 0.3,
              attempts: int = 10) -> tuple[int, int, int, int] | None:
  """timm RandomErasing's box (count 1): (top, left, h, w), or None after `attempts` misses."""
  area = height * width
  log_ratio = (math.log(min_aspect), math.log(1 / min_aspect))
  for _ in range(attempts):
    target = rng.uniform(min_area, max_area) * area
    aspect = math.exp(rng.uniform(*log_ratio))
    h = int(round(math.sqrt(target * aspect)))
    w = int(round(math.sqrt(target / aspect)))
    if w < width and h < height:
      top = int(rng.integers(0, height - h + 1))
      left = int(rng.integers(0, width - w + 1))
      return top, left, h, w
  return None


def make_random_erasing(probability: float = RECIPE_ERASING_PROB) -> augment.AugmentFn:
  """timm RandomErasing(probability, mode='pixel', max_count=1) as an `augment` op."""
  if not 0.0 <= probability <= 1.0:
    raise ValueError(f"random erasing probability={probability!r} is not allowed: in [0, 1].")

  def random_erasing(image: np.ndarray, rng: np.random.Generator, data_config: Any
                     ) -> np.ndarray:
    if rng.random() > probability:
      return image
    height, width, channels = image.shape
    box = erase_box(height, width, rng)
    if box is None:
      return image
    top, left, h, w = box
    # Noise is N(0, 1) after normalisation: write mean + std * z in [0, 1] units.
    mean = np.broadcast_to(np.asarray(data_config.mean, np.float32), (channels,))
    std = np.broadcast_to(np.asarray(data_config.std, np.float32), (channels,))
    z = rng.standard_normal((h, w, channels)).astype(np.float32)
    out = image.copy()
    out[top:top + h, left:left + w] = mean + std * z
    return out

  return random_erasing


augment.register("randaugment")(make_randaugment())
augment.register("random_erasing")(make_random_erasing())
