"""Evaluators chosen by name in `config.eval.evaluators`.

  'classification'  top-1 / top-5 accuracy, loss and ECE on config.eval.splits
                    (common.eval.classification).
  'throughput'      images/s of the jitted eval forward on one real batch of
                    config.eval.splits[0] (batch config.eval.batch_size), timed over
                    config.eval.throughput_iters calls after config.eval.throughput_warmup
                    untimed ones (compilation included there). Wall-clock, so it depends on the
                    machine and its load: a benchmark number, not a quality metric.

(The throughput evaluator has a twin in projects/svit/evaluators.py: projects do not import
each other; it belongs in common/eval once that package takes it.)
"""
from __future__ import annotations

import time
from typing import Any

import jax
import ml_collections
from flax import nnx

from common.eval import accumulate, classification
from common.train import task as task_lib


class ThroughputEvaluator:
  """Images per second of `model(batch['image'])` in inference mode."""

  def __init__(self, split: str, *, warmup: int = 2, iters: int = 5):
    if warmup < 1 or iters < 1:
      raise ValueError(f"throughput warmup={warmup}, iters={iters}: both must be >= 1 "
                       "(the first call compiles and must not be timed).")
    self.split, self.warmup, self.iters = split, warmup, iters
    self._forward = nnx.jit(lambda model, images: accumulate.clean_forward(
        lambda m, b: m(b["image"]), model, {"image": images}))

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


def build_evaluators(config: ml_collections.ConfigDict) -> dict[str, task_lib.Evaluator]:
  """{name: evaluator} for each name in config.eval.evaluators; an unknown name is an error."""
  e = config.eval
  available = {
      "classification": lambda: classification.ClassificationEvaluator(e.splits),
      "throughput": lambda: ThroughputEvaluator(
          e.splits[0], warmup=e.get("throughput_warmup", 2), iters=e.get("throughput_iters", 5)),
  }
  names = tuple(e.get("evaluators", ("classification",)))
  unknown = [n for n in names if n not in available]
  if unknown:
    raise ValueError(f"config.eval.evaluators={names!r}: {unknown} unknown; allowed: "
                     f"{sorted(available)}.")
  return {name: available[name]() for name in names}
