"""Evaluators of image classifiers, chosen by name in `config.eval.evaluators` (svit, biformer).

  'classification'  top-1 / top-5 accuracy, loss and ECE on config.eval.splits
                    (common.eval.classification).
  'throughput'      images/s of the jitted eval forward on one real batch of
                    config.eval.splits[0] (batch config.eval.batch_size), timed over
                    config.eval.throughput_iters calls after config.eval.throughput_warmup
                    untimed ones (compilation included there). Wall-clock, so it depends on the
                    machine and its load: a benchmark number, not a quality metric.
"""
from __future__ import annotations

import ml_collections

from common.eval import classification
from common.eval.throughput import ThroughputEvaluator
from common.train import task as task_lib


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
