"""Images per second of a model's jitted eval forward: a benchmark number, not a quality metric.

Timed on one real batch of the split after `warmup` untimed calls (the first compiles), so it
depends on the machine and its load.
"""
from __future__ import annotations

import time
from typing import Any

import jax
from flax import nnx

from common.eval import accumulate


class ThroughputEvaluator:
  """Images per second of `forward(model, {'image': images})` (default: `model(images)`)."""

  def __init__(self, split: str, *, warmup: int = 2, iters: int = 5,
               forward: accumulate.Forward = accumulate.image_logits):
    if warmup < 1 or iters < 1:
      raise ValueError(f"throughput warmup={warmup}, iters={iters}: both must be >= 1 "
                       "(the first call compiles and must not be timed).")
    self.split, self.warmup, self.iters = split, warmup, iters
    self._forward = nnx.jit(lambda model, images: accumulate.clean_forward(
        forward, model, {"image": images}))

  def __call__(self, model: nnx.Module, ctx: Any) -> dict[str, float]:
    batch = next(iter(ctx.batches(self.split, max_batches=1)))
    images = batch["image"]
    for _ in range(self.warmup):
      jax.block_until_ready(self._forward(model, images))
    start = time.perf_counter()
    for _ in range(self.iters):
      jax.block_until_ready(self._forward(model, images))
    seconds = (time.perf_counter() - start) / self.iters
    return {"images_per_s": images.shape[0] / seconds, "batch_size": float(images.shape[0])}
