"""The contract between a project and the shared trainer.

A project supplies a `Task`: its model, its loss, and (optionally) its data. Evaluators are
chosen by name in `config.eval.evaluators` (common/eval/registry.py). Everything else (mesh,
sharding, optimiser, jit step, checkpoints, metrics) is common code.
`projects/<name>/task.py` must define `get_task(config) -> Task`; the trainer and
`python -m common.eval` find it from `config.project` alone.
"""
from __future__ import annotations

import abc
import importlib
from typing import Any, Iterator, Mapping

import jax
import ml_collections
from flax import nnx

Batch = Mapping[str, Any]
Metrics = dict[str, jax.Array]


class Task(abc.ABC):
  """What a project gives the trainer. Subclass it in `projects/<name>/task.py`."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config

  def validate(self, config: ml_collections.ConfigDict) -> None:
    """Project-specific config checks, run by `trainer.setup` before anything is built.

    Raise ValueError naming the field, the value and what is allowed, e.g. a sequence length
    that the attention kernel's block size does not divide. Default: nothing to check.
    """
    del config

  @abc.abstractmethod
  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    """Constructs the model. Called under jax.jit (never materialised unsharded)."""

  @abc.abstractmethod
  def loss(self, model: nnx.Module, batch: Batch, *, train: bool,
           rngs: nnx.Rngs | None) -> tuple[jax.Array, Metrics]:
    """Returns the scalar mean loss over the batch and a dict of scalar metrics.

    `batch` holds global arrays sharded over the mesh's batch axes. Example weights, when the
    batch carries them ("mask" for padded evaluation batches), are the task's to apply.
    """

  def project_params(self, params: dict, step: jax.Array, learning_rate: jax.Array) -> dict:
    """Maps the parameters right after the optimiser step (inside the jit step), before
    `after_update` sees them: the second half of a proximal-gradient step (e.g. a group lasso's
    block soft-threshold at learning_rate * lambda, which gives exact zeros that a subgradient
    never reaches) or a projection onto a constraint set. `learning_rate` is the schedule's
    value at `step`; returns the new `params`. Default: unchanged.
    """
    del step, learning_rate
    return params

  def after_update(self, params: dict, model_state: dict, step: jax.Array) -> dict:
    """Updates non-parameter model state after the optimiser step (inside the jit step).

    For state that follows the parameters rather than the loss, e.g. I-JEPA's target encoder,
    an EMA of the context encoder with a scheduled momentum. `params` are the new parameters,
    `step` the index of the step just taken; returns the new `model_state`. Default: unchanged.
    """
    del params, step
    return model_state

  def train_data(self, *, seed: int, process_index: int, process_count: int,
                 batch_size: int) -> Iterator[Batch]:
    """Per-process batches for training, as a checkpointable grain iterator.

    The default reads `config.data` through `common.data`. `batch_size` is this process's share.
    """
    from common.data import pipeline
    return pipeline.train_iterator(self.config.data, seed=seed, process_index=process_index,
                                   process_count=process_count, batch_size=batch_size)

  def eval_data(self, split: str, *, process_index: int, process_count: int,
                batch_size: int) -> Iterator[Batch]:
    """One finite, ordered pass over `split`; the last batch is padded and carries "mask"."""
    from common.data import pipeline
    return pipeline.eval_iterator(self.config.data, split=split, process_index=process_index,
                                  process_count=process_count, batch_size=batch_size)

  def eval_forward(self, model: nnx.Module, batch: Batch) -> jax.Array:
    """The model's inference forward on an evaluation batch, as the shared evaluators
    (common/eval/registry.py: classification, throughput, sparsity, robustness) call it.
    Default: the model on batch['image']."""
    return model(batch["image"])

  def sample(self, model: nnx.Module, prompt: str, *, num_tokens: int, temperature: float,
             seed: int) -> str:
    """`--mode=sample`: the prompt continued by `num_tokens` tokens, as text (LM tasks only)."""
    raise NotImplementedError(
        f"project {self.config.get('project')!r} has no --mode=sample (its Task does not "
        "implement sample); language-model projects such as routing_transformer and monet do.")


# Tasks that live in common/ rather than projects/: the trainer's own demo task, so that tests
# (multi-process, faults) can drive `main.run("toy")` and `python -m common.eval` end to end;
# and the attention-comparison LM, whose mixers come from several projects.
BUILTIN_TASKS = {"toy": "common.train.toy_task", "mixer_lm": "common.tasks.mixer_lm"}


def load_task(config: ml_collections.ConfigDict) -> Task:
  """Imports `projects.<config.project>.task` by convention and builds its Task."""
  name = config.get("project")
  if not name:
    raise ValueError("config.project is not set: every config must name its project, "
                     "e.g. config.project = 'lazy_neuron'.")
  try:
    module = importlib.import_module(BUILTIN_TASKS.get(name, f"projects.{name}.task"))
  except ModuleNotFoundError as e:
    if e.name in (f"projects.{name}", f"projects.{name}.task"):
      raise ValueError(f"config.project={name!r} names no project: expected "
                       f"projects/{name}/task.py defining get_task(config).") from e
    raise
  return module.get_task(config)
