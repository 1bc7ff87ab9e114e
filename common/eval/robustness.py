"""Accuracy under input corruptions: Gaussian noise, impulse noise, Gaussian blur, contrast.

The Lazy Neuron paper reports better robustness to input corruption with top-k; its own
corruption setup (ImageNet-C) is not confirmed here, so these four, at levels the config names,
are a simple, reproducible proxy of four of ImageNet-C's kinds (noise, impulse, blur, contrast).
Images are NHWC in the units of the model's input as the data pipeline delivers it (no clipping,
no re-normalisation). Three of the corruptions are affine-invariant, so they mean the same
whatever the normalisation:

  gaussian_noise  x + sigma * N(0, 1); sigma in the input's units ('sigma_<s>')
  impulse_noise   a fraction p of the pixels (all channels of one) set to the image's minimum
                  or maximum, half each (salt and pepper; 'p_<p>')
  gaussian_blur   a separable Gaussian kernel of sigma pixels, radius ceil(3 sigma), edges
                  repeated ('sigma_px_<s>')
  contrast        m + c (x - m), m the image's mean: c = 1 is clean, c = 0 a flat image ('c_<c>')

The draws are deterministic: batch i and level j (counted over all corruptions in order) draw
from fold_in(fold_in(key(seed), i), j), so repeated evaluations of one checkpoint agree exactly
and every level sees an independent draw. They are drawn for the whole global batch inside jit,
so they do not depend on the number of processes (with jax_threefry_partitionable).

Keys: '<split>/<corruption>/<param>_<level>/accuracy' for each level,
'<split>/<corruption>/mean_accuracy' over its levels, and '<split>/corruptions/mean_accuracy'
over the corruptions' means.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from common.eval import accumulate


def _gaussian_noise(x, key, sigma):
  return x + sigma * jax.random.normal(key, x.shape, jnp.float32)


def _per_image(reduce, x):
  return reduce(x, axis=tuple(range(1, x.ndim)), keepdims=True)


def _impulse_noise(x, key, p):
  u = jax.random.uniform(key, x.shape[:-1] + (1,))
  return jnp.where(u < p / 2, _per_image(jnp.min, x), jnp.where(u < p, _per_image(jnp.max, x), x))


def _gaussian_blur(x, key, sigma):
  del key
  if sigma <= 0:
    return x
  r = math.ceil(3 * sigma)
  taps = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-r, r + 1)]
  taps = [t / sum(taps) for t in taps]
  for axis in (1, 2):                      # H, then W
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    xp = jnp.pad(x, pad, mode="edge")
    n = x.shape[axis]
    x = sum(t * jax.lax.slice_in_dim(xp, i, i + n, axis=axis) for i, t in enumerate(taps))
  return x


def _contrast(x, key, c):
  del key
  m = _per_image(jnp.mean, x)
  return m + c * (x - m)


# name -> (corrupt(x float32 NHWC, key, level), the level's name in the metric keys).
CORRUPTIONS: dict[str, tuple[Callable, str]] = {
    "gaussian_noise": (_gaussian_noise, "sigma"),
    "impulse_noise": (_impulse_noise, "p"),
    "gaussian_blur": (_gaussian_blur, "sigma_px"),
    "contrast": (_contrast, "c"),
}


class CorruptionEvaluator:
  """Args:
    splits: split name(s).
    corruptions: name -> levels (module docstring; default Gaussian noise at 0.1, 0.25, 0.5);
      level 0 of gaussian_noise / impulse_noise / gaussian_blur and level 1 of contrast give the
      clean accuracy.
    seed: base seed of the draws.
    forward: (model, batch) -> logits; the corrupted input replaces batch[input_key].
    input_key, label_key: batch fields.
    max_batches: stop after this many batches per split (None: the config's eval.max_batches).
  """

  def __init__(self, splits: str | Sequence[str] = "test", *,
               corruptions: Mapping[str, Sequence[float]] | None = None,
               seed: int = 0, forward: accumulate.Forward = accumulate.image_logits,
               input_key: str = "image", label_key: str = "label",
               max_batches: int | None = None):
    self.splits = accumulate.as_splits(splits)
    corruptions = dict((corruptions or {"gaussian_noise": (0.1, 0.25, 0.5)}).items())
    unknown = sorted(set(corruptions) - set(CORRUPTIONS))
    empty = sorted(name for name, levels in corruptions.items() if not len(levels))
    if unknown or empty or not corruptions:
      raise ValueError(f"corruptions={sorted(corruptions)!r}: unknown {unknown}, without levels "
                       f"{empty}; choose from {sorted(CORRUPTIONS)}, each with a non-empty "
                       "sequence of levels.")
    self.levels = [(name, float(level)) for name, levels in corruptions.items()
                   for level in levels]
    bad = [(n, lv) for n, lv in self.levels if lv < 0 or (n == "impulse_noise" and lv > 1)]
    if bad:
      raise ValueError(f"corruption levels {bad}: levels must be >= 0 (impulse_noise's p at "
                       "most 1).")
    self.max_batches = max_batches
    base_key = jax.random.key(seed)
    levels = self.levels

    def batch_sums(model: nnx.Module, batch: Mapping[str, Any], index) -> dict[str, jax.Array]:
      x = batch[input_key]
      weight = batch["mask"].astype(jnp.float32)
      batch_key = jax.random.fold_in(base_key, index)
      sums = {"count": jnp.sum(weight)}
      for j, (name, level) in enumerate(levels):
        corrupt = CORRUPTIONS[name][0]
        bad = corrupt(x.astype(jnp.float32), jax.random.fold_in(batch_key, j), level)
        logits = accumulate.clean_forward(forward, model, {**batch, input_key: bad.astype(x.dtype)})
        correct = (jnp.argmax(logits, axis=-1) == batch[label_key]).astype(jnp.float32)
        sums[f"correct/{j}"] = jnp.sum(weight * correct)
      return sums

    self._batch_sums = nnx.jit(batch_sums)

  def __call__(self, model: nnx.Module, ctx: Any) -> dict[str, float]:
    out = {}
    for split, sums in accumulate.split_sums(self._batch_sums, model, ctx, self.splits,
                                             self.max_batches):
      n = sums.get("count", 0.0)
      by_name: dict[str, list[float]] = {}
      for j, (name, level) in enumerate(self.levels):
        acc = accumulate.safe_ratio(sums.get(f"correct/{j}", 0.0), n)
        out[f"{split}/{name}/{CORRUPTIONS[name][1]}_{level:g}/accuracy"] = acc
        by_name.setdefault(name, []).append(acc)
      means = {name: sum(a) / len(a) for name, a in by_name.items()}
      for name, mean in means.items():
        out[f"{split}/{name}/mean_accuracy"] = mean
      out[f"{split}/corruptions/mean_accuracy"] = sum(means.values()) / len(means)
    return out
