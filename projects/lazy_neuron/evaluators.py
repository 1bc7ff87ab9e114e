"""Evaluators chosen by name in `config.eval.evaluators`, built from common.eval.

  'loss'            the task's own loss and metrics on config.eval.splits (common.eval.task_loss);
                    for T5 this is the eval cross-entropy and token accuracy.
  'classification'  (ViT) accuracy, top-5, loss, ECE with 15 bins on config.eval.splits.
  'sparsity'        act_nonzero per layer and mean on config.eval.split_for_train_stats (training
                    data, '' to skip) and on config.eval.splits: the paper reports both.
  'robustness'      (ViT) accuracy under Gaussian input noise, sigmas config.eval.sigmas (input
                    units after the data layer's normalisation), seeded by config.seed.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import ml_collections
from flax import nnx

from common.eval import accumulate, classification, robustness, sparsity, task_loss
from common.train import task as task_lib


def _t5_forward(model: nnx.Module, batch: Mapping[str, Any]):
  return model(batch["encoder_input_tokens"], batch["decoder_input_tokens"],
               decoder_target_tokens=batch["decoder_target_tokens"])


class _PerSplit:
  """Runs a one-split evaluator (TaskLoss) on several splits and merges the results."""

  def __init__(self, make: Callable[[str], task_lib.Evaluator], splits: Sequence[str]):
    self._evaluators = [make(split) for split in splits]

  def __call__(self, model: nnx.Module, ctx: Any) -> dict[str, float]:
    out = {}
    for evaluator in self._evaluators:
      out.update(evaluator(model, ctx))
    return out


def _sparsity_splits(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  train = config.eval.get("split_for_train_stats", "")
  splits = ((train,) if train else ()) + tuple(config.eval.splits)
  return tuple(dict.fromkeys(splits))  # drop repeats, keep order


def _available(config: ml_collections.ConfigDict) -> dict[str, Callable[[], task_lib.Evaluator]]:
  e = config.eval
  forward = _t5_forward if config.model.name == "t5" else accumulate.image_logits
  available = {
      "loss": lambda: _PerSplit(task_loss.TaskLoss, e.splits),
      "sparsity": lambda: sparsity.SparsityEvaluator(_sparsity_splits(config), forward=forward),
  }
  if config.model.name == "vit":
    available["classification"] = lambda: classification.ClassificationEvaluator(e.splits)
    available["robustness"] = lambda: robustness.GaussianNoiseEvaluator(
        e.splits, sigmas=e.get("sigmas", (0.5,)), seed=config.seed)
  return available


def build_evaluators(config: ml_collections.ConfigDict) -> dict[str, task_lib.Evaluator]:
  """{name: evaluator} for each name in config.eval.evaluators (an unknown name is an error)."""
  available = _available(config)
  names = tuple(config.eval.get("evaluators", ()))
  unknown = [n for n in names if n not in available]
  if unknown:
    raise ValueError(f"config.eval.evaluators={names!r}: {unknown} not available for "
                     f"config.model.name={config.model.name!r}; allowed: {sorted(available)}.")
  return {name: available[name]() for name in names}
