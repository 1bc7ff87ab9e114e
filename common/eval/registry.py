"""The one name -> evaluator registry: `config.eval.evaluators` names what a run evaluates.

The trainer (and `python -m common.eval`) calls `build(config, task)` once per run, in
`trainer.setup`, before anything compiles: an unknown name, or one that does not fit the run,
fails there. The evaluators are then reused at every evaluation, so their jitted steps compile
once. `config.eval.evaluators` defaults to ('loss',).

Shared evaluators (registered here):
  'loss'            the task's own loss and metrics on config.eval.splits (task_loss.TaskLoss;
                    with the language-model family's 'ce' and 'ppl' metrics, ppl = exp(mean ce)).
  'classification'  top-1 / top-5 accuracy, loss and ECE (15 bins) on config.eval.splits.
  'throughput'      images/s of the jitted eval forward on one batch of config.eval.splits[0],
                    timed over config.eval.throughput_iters (5) calls after
                    config.eval.throughput_warmup (2) untimed ones. Wall-clock: a benchmark
                    number that depends on the machine and its load, not a quality metric.
  'sparsity'        fraction of nonzero MLP activations per layer and mean, on
                    config.eval.split_for_train_stats (training data; '' to skip) and on
                    config.eval.splits.
  'recall'          answer accuracy and cross-entropy near vs far from the store, on the
                    recall stream (common.data.recall; recall.DistanceEvaluator).
  'repeat_distance' the same per distance bucket on text: how far back the target's k-gram
                    last occurred in its sequence (config.eval.repeat_k, repeat_edges;
                    common/eval/recall.py).
  'robustness'      accuracy under input corruptions (common/eval/robustness.py): Gaussian
                    noise, impulse noise, Gaussian blur, contrast, with the levels of
                    config.eval.corruptions (name -> levels; noise in input units after the
                    data layer's normalisation), seeded by config.seed.
The image evaluators call `task.eval_forward(model, batch)` (default: the model on
batch['image']), and are refused for text data.

A project registers its own evaluators next to its Task (`register('board_state', factory)`);
importing the project's task module, as the trainer does, makes them available. A factory takes
a `BuildContext` and returns an evaluator: `(model, EvalContext) -> {name: float}`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import ml_collections
from flax import nnx

from common import registry
from common.eval import classification, recall, robustness, sparsity, task_loss, throughput

DEFAULT = ("loss",)


class Evaluator(Protocol):
  """Computes scalar results from a model on the task's evaluation data.

  `ctx` is a `common.eval.context.EvalContext`: it yields sharded global batches and carries the
  config, the task and the mesh. Evaluators return plain python floats keyed by name.
  """

  def __call__(self, model: nnx.Module, ctx: Any) -> dict[str, float]:
    ...


@dataclasses.dataclass
class BuildContext:
  """What a factory sees: the run's config and task, and `shared`, a dict that lives for one
  `build` call, for parts that several evaluators of one run share (e.g. one feature
  extraction read by two probes)."""
  config: ml_collections.ConfigDict
  task: Any
  shared: dict = dataclasses.field(default_factory=dict)


Factory = Callable[[BuildContext], Evaluator]
_FACTORIES: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> Factory:
  """Makes `name` available in config.eval.evaluators. One meaning per name across the repo:
  a second module registering the same name is an error (re-importing the same module is not)."""
  return registry.claim(_FACTORIES, "evaluator", name, factory)


def names() -> tuple[str, ...]:
  """The registered names, sorted."""
  return tuple(sorted(_FACTORIES))


def build(config: ml_collections.ConfigDict, task: Any) -> dict[str, Evaluator]:
  """{name: evaluator} for each name in config.eval.evaluators, in that order."""
  wanted = tuple(config.eval.get("evaluators", DEFAULT))
  unknown = [n for n in wanted if n not in _FACTORIES]
  if unknown:
    raise ValueError(f"config.eval.evaluators={wanted!r}: {unknown} not available for project "
                     f"{config.get('project')!r}; allowed: {list(names())}.")
  ctx = BuildContext(config, task)
  return {name: _FACTORIES[name](ctx) for name in wanted}


# ------------------------------------------------------------------- the shared evaluators
def image_forward(ctx: BuildContext, name: str) -> Callable:
  """The task's eval forward, for an evaluator that feeds images; text data is refused."""
  kind = ctx.config.get("data", ml_collections.ConfigDict()).get("kind", "")
  if kind == "text":
    raise ValueError(f"config.eval.evaluators has {name!r}, which evaluates an image model, but "
                     f"config.data.kind='text'; drop it.")
  return ctx.task.eval_forward


def _sparsity_splits(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  train = config.eval.get("split_for_train_stats", "")
  splits = ((train,) if train else ()) + tuple(config.eval.splits)
  return tuple(dict.fromkeys(splits))  # drop repeats, keep order


def _corruptions(config: ml_collections.ConfigDict):
  """config.eval.corruptions; a config saved before that field existed names only the sigmas
  of Gaussian noise (eval.sigmas)."""
  if "corruptions" in config.eval:
    return config.eval.corruptions
  return {"gaussian_noise": config.eval.get("sigmas", (0.5,))}


register("loss", lambda c: task_loss.TaskLoss(c.config.eval.splits))
register("classification", lambda c: classification.ClassificationEvaluator(
    c.config.eval.splits, forward=image_forward(c, "classification")))
register("throughput", lambda c: throughput.ThroughputEvaluator(
    c.config.eval.splits[0], warmup=c.config.eval.get("throughput_warmup", 2),
    iters=c.config.eval.get("throughput_iters", 5), forward=image_forward(c, "throughput")))
register("sparsity", lambda c: sparsity.SparsityEvaluator(
    _sparsity_splits(c.config), forward=c.task.eval_forward))
register("robustness", lambda c: robustness.CorruptionEvaluator(
    c.config.eval.splits, corruptions=_corruptions(c.config), seed=c.config.seed,
    forward=image_forward(c, "robustness")))
register("recall", recall.build)
register("repeat_distance", recall.build_repeat)
