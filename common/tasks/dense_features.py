"""Multi-scale backbone outputs of the vision projects (svit, biformer) for dense prediction.

A project's model config has `out_indices` (the stages whose maps `model.features(x)` returns,
checked by `check_out_indices`) and a `feature_info()` giving, per returned map, a `FeatureInfo`
(stage index, channels, reduction = nominal stride w.r.t. the input). `SimpleSegHead` is a
minimal, documented example head over such maps (not a paper's head): a 1x1 projection per
level, bilinear upsampling to the finest level, a sum, a 1x1 classifier and bilinear upsampling to
the input size. It takes NHWC maps, as both models return them.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from common.layers import keys
from common.layers.linear import Linear


@dataclasses.dataclass(frozen=True)
class FeatureInfo:
  """One returned map: `stage` index, `channels` (last axis), `reduction` (input H / map H for
  an input divisible by it; convs with padding round up otherwise)."""
  stage: int
  channels: int
  reduction: int


def check_out_indices(out_indices: Any, num_stages: int) -> tuple[int, ...]:
  """`out_indices` as a tuple of distinct, increasing stage indices in [0, num_stages)."""
  if isinstance(out_indices, (str, bytes)) or not isinstance(out_indices, Sequence):
    raise ValueError(f"out_indices={out_indices!r} must be a sequence of stage indices.")
  value = tuple(out_indices)
  ok = (len(value) >= 1 and all(isinstance(i, int) and not isinstance(i, bool) for i in value)
        and all(0 <= i < num_stages for i in value) and list(value) == sorted(set(value)))
  if not ok:
    raise ValueError(f"out_indices={value!r} is invalid: expected distinct increasing stage "
                     f"indices in [0, {num_stages}), at least one.")
  return value


def feature_info(out_indices: Sequence[int], channels: Sequence[int],
                 reductions: Sequence[int]) -> tuple[FeatureInfo, ...]:
  """The FeatureInfo of each stage in `out_indices` from per-stage channels and reductions."""
  return tuple(FeatureInfo(i, int(channels[i]), int(reductions[i])) for i in out_indices)


def _resize(x: jax.Array, hw: tuple[int, int]) -> jax.Array:
  if x.shape[1:3] == tuple(hw):
    return x
  return jax.image.resize(x, (x.shape[0], *hw, x.shape[-1]), method="bilinear")


class SimpleSegHead(nnx.Module):
  """Example dense head: per-level 1x1 -> upsample to the finest level -> sum -> GELU -> 1x1.

  `__call__(maps, out_hw)` takes the backbone's NHWC maps (finest first, as `features`
  returns them) and gives per-pixel logits (B, *out_hw, num_classes).
  """

  def __init__(self, infos: Sequence[FeatureInfo], num_classes: int, *, width: int = 32,
               rngs: nnx.Rngs | keys.KeyStream):
    stream = keys.KeyStream.of(rngs)
    self.lateral = nnx.List([Linear(info.channels, width, rngs=stream) for info in infos])
    self.classifier = Linear(width, num_classes, rngs=stream)

  def __call__(self, maps: Sequence[jax.Array], out_hw: tuple[int, int], *, train=False,
               rngs=None):
    del train, rngs  # no dropout or batch statistics
    if len(maps) != len(self.lateral):
      raise ValueError(f"got {len(maps)} maps; the head was built for {len(self.lateral)}.")
    hw = maps[0].shape[1:3]
    y = sum(_resize(proj(m), hw) for proj, m in zip(self.lateral, maps))
    return _resize(self.classifier(jax.nn.gelu(y)), tuple(out_hw))


def pixel_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean per-pixel softmax cross-entropy: logits (B, H, W, K), int labels (B, H, W)."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.mean(jnp.take_along_axis(logp, labels[..., None], axis=-1))


class Segmenter(nnx.Module):
  """The example end to end: a backbone's `features` through SimpleSegHead, logits at the
  input's size. `backbone` is any model with `features(x)` and `feature_info()` (svit, biformer)."""

  def __init__(self, backbone, num_classes: int, *, width: int = 32,
               rngs: nnx.Rngs | keys.KeyStream):
    self.backbone = backbone
    self.head = SimpleSegHead(backbone.feature_info(), num_classes, width=width, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False, rngs=None) -> jax.Array:
    return self.head(self.backbone.features(x, train=train, rngs=rngs), x.shape[1:3])


@nnx.jit
def segmentation_loss_and_grads(model: Segmenter, x: jax.Array, labels: jax.Array):
  """((pixel cross-entropy, logits), gradients) of one batch: what a training step needs."""

  def loss_fn(model):
    logits = model(x)
    return pixel_cross_entropy(logits, labels), logits

  return nnx.value_and_grad(loss_fn, has_aux=True)(model)
