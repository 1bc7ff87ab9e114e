"""Mixup / CutMix with label smoothing as a pure-jnp batch op (timm `Mixup`, mode 'batch').

  images, targets = mixup.mix_batch(rng, images, labels, num_classes=1000,
                                    config=mixup.MixupConfig())  # timm / DeiT defaults

Semantics follow timm.data.Mixup in 'batch' mode (the DeiT / STViT / BiFormer recipe):
  - with probability `prob` the batch is mixed, else only label smoothing applies;
  - when both alphas are > 0, CutMix is chosen with probability `switch_prob`, Mixup otherwise;
  - lam ~ Beta(alpha, alpha) of the chosen op; the partner of example i is example B-1-i
    (timm's `x.flip(0)`);
  - Mixup: x = lam * x + (1 - lam) * x[::-1];
  - CutMix: a box of side int(H * sqrt(1 - lam)) x int(W * sqrt(1 - lam)) centred at a uniform
    integer pixel, clipped to the image, is pasted from the partner; with `correct_lam` the
    weight becomes 1 - (box area) / (H W), the fraction of the image actually kept;
  - targets: smoothed one-hots (off = smoothing / C, on = 1 - smoothing + off), mixed with the
    same weight: lam * y + (1 - lam) * y[::-1].

It runs inside the jitted train step on the step's rng (on device; a resumed run draws the
same mixing, because the step rng depends only on (seed, step)). Under data parallelism the
reversal pairs examples across devices: one collective permute of the batch per step.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class MixupConfig:
  """timm `Mixup` arguments (defaults: the DeiT recipe: --mixup .8 --cutmix 1. --smoothing .1)."""
  mixup_alpha: float = 0.8
  cutmix_alpha: float = 1.0
  prob: float = 1.0
  switch_prob: float = 0.5
  label_smoothing: float = 0.1
  correct_lam: bool = True

  def __post_init__(self):
    for name in ("mixup_alpha", "cutmix_alpha"):
      value = getattr(self, name)
      if not value >= 0:
        raise ValueError(f"{name}={value!r} is not allowed: a number >= 0 (0 disables it).")
    for name in ("prob", "switch_prob"):
      value = getattr(self, name)
      if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r} is not allowed: a probability in [0, 1].")
    if not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(f"label_smoothing={self.label_smoothing!r} is not allowed: in [0, 1).")

  @property
  def mixes(self) -> bool:
    return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)


def smooth_one_hot(labels: jax.Array, num_classes: int, smoothing: float) -> jax.Array:
  """timm `one_hot(..., on_value=1 - s + s / C, off_value=s / C)`, float32 [B, C]."""
  off = smoothing / num_classes
  on = 1.0 - smoothing + off
  return jnp.where(jax.nn.one_hot(labels, num_classes, dtype=jnp.bool_), on, off).astype(
      jnp.float32)


def cutmix_box(rng: jax.Array, height: int, width: int, lam: jax.Array
               ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """timm `rand_bbox` (margin 0): (y_lo, y_hi, x_lo, x_hi) int32 scalars, clipped to the image."""
  ratio = jnp.sqrt(1.0 - lam)
  cut_h = jnp.floor(height * ratio).astype(jnp.int32)  # python int() truncates; ratio >= 0
  cut_w = jnp.floor(width * ratio).astype(jnp.int32)
  ky, kx = jax.random.split(rng)
  cy = jax.random.randint(ky, (), 0, height)
  cx = jax.random.randint(kx, (), 0, width)
  y_lo = jnp.clip(cy - cut_h // 2, 0, height)
  y_hi = jnp.clip(cy + cut_h // 2, 0, height)
  x_lo = jnp.clip(cx - cut_w // 2, 0, width)
  x_hi = jnp.clip(cx + cut_w // 2, 0, width)
  return y_lo, y_hi, x_lo, x_hi


def mix_batch(rng: jax.Array, images: jax.Array, labels: jax.Array, *, num_classes: int,
              config: MixupConfig = MixupConfig()) -> tuple[jax.Array, jax.Array]:
  """Returns (mixed NHWC images, soft targets float32 [B, num_classes]).

  With mixing disabled (prob 0 or both alphas 0) only label smoothing is applied.
  """
  if images.ndim != 4:
    raise ValueError(f"images.shape={images.shape} is not allowed: NHWC [B, H, W, C].")
  if labels.shape != images.shape[:1]:
    raise ValueError(f"labels.shape={labels.shape} does not match the batch of images "
                     f"{images.shape}: expected ({images.shape[0]},).")
  targets = smooth_one_hot(labels, num_classes, config.label_smoothing)
  if not config.mixes:
    return images, targets
  k_apply, k_switch, k_mix, k_cut, k_box = jax.random.split(rng, 5)
  if config.mixup_alpha > 0 and config.cutmix_alpha > 0:
    use_cutmix = jax.random.uniform(k_switch) < config.switch_prob
  else:
    use_cutmix = jnp.asarray(config.cutmix_alpha > 0)
  # Beta(0, 0) is undefined: a disabled op's draw is replaced by a harmless alpha.
  lam_mix = jax.random.beta(k_mix, config.mixup_alpha or 1.0, config.mixup_alpha or 1.0)
  lam_cut = jax.random.beta(k_cut, config.cutmix_alpha or 1.0, config.cutmix_alpha or 1.0)
  lam = jnp.where(use_cutmix, lam_cut, lam_mix).astype(jnp.float32)
  apply = jax.random.uniform(k_apply) < config.prob
  lam = jnp.where(apply, lam, 1.0)

  _, height, width, _ = images.shape
  y_lo, y_hi, x_lo, x_hi = cutmix_box(k_box, height, width, lam)
  rows = jnp.arange(height)[:, None]
  cols = jnp.arange(width)[None, :]
  in_box = (rows >= y_lo) & (rows < y_hi) & (cols >= x_lo) & (cols < x_hi)
  if config.correct_lam:
    area = (y_hi - y_lo) * (x_hi - x_lo)
    lam_cut_corrected = 1.0 - area.astype(jnp.float32) / float(height * width)
  else:
    lam_cut_corrected = lam
  cut = use_cutmix & apply
  lam = jnp.where(cut, lam_cut_corrected, lam)

  partner = images[::-1]
  lam_x = lam.astype(images.dtype)
  mixed = lam_x * images + (1 - lam_x) * partner
  pasted = jnp.where(in_box[None, :, :, None], partner, images)
  images = jnp.where(cut, pasted, mixed)
  targets = lam * targets + (1.0 - lam) * targets[::-1]
  return images, targets


def soft_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Per-example -sum(targets * log_softmax(logits)) (timm SoftTargetCrossEntropy), float32."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.sum(targets * logp, axis=-1)
