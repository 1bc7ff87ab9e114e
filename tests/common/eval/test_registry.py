"""The evaluator registry: names checked before anything compiles, one meaning per name, evaluators
built once per run; TaskLoss's perplexity is exp of the split's mean cross-entropy."""
import math
import types

import jax.numpy as jnp
import numpy as np
import pytest

from common.eval import registry, task_loss
from common.train import toy_task, trainer

BUILDS, CALLS = [], []


def _counting(ctx):
  BUILDS.append(ctx.config.project)

  def evaluate(model, eval_ctx):
    del model, eval_ctx
    CALLS.append(1)
    return {"calls": float(len(CALLS))}
  return evaluate


registry.register("test_counting", _counting)


def test_unknown_name_lists_the_allowed_ones():
  config = toy_task.get_config()
  config.eval.evaluators = ("loss", "nosuch")
  with pytest.raises(ValueError, match=r"\['nosuch'\] not available .*allowed: \[.*'loss'"):
    registry.build(config, toy_task.ToyTask(config))
  config.eval.evaluators = ("loss",)
  assert list(registry.build(config, toy_task.ToyTask(config))) == ["loss"]


def test_a_name_has_one_meaning():
  other = lambda ctx: None  # noqa: E731
  other.__module__ = "somewhere.else"
  with pytest.raises(ValueError, match="'loss' is registered by common.eval.registry already"):
    registry.register("loss", other)
  registry.register("test_counting", _counting)  # the same module again (a re-import): fine


def test_image_evaluators_refuse_text_data():
  config = toy_task.get_config()
  config.data.kind = "text"
  config.eval.evaluators = ("classification",)
  with pytest.raises(ValueError, match="'classification', which evaluates an image model"):
    registry.build(config, toy_task.ToyTask(config))


def test_the_trainer_builds_evaluators_once_per_run(tmp_path):
  config = toy_task.get_config()
  config.train.num_steps, config.train.eval_every, config.train.checkpoint_every = 6, 2, 6
  config.eval.evaluators = ("loss", "test_counting")
  BUILDS.clear()
  CALLS.clear()
  final = trainer.train(config, str(tmp_path), task=toy_task.ToyTask(config))
  assert BUILDS == ["toy"] and len(CALLS) == 3  # evaluations at steps 2, 4 and the final one
  assert final["eval/test_counting/calls"] == 3.0 and "eval/loss/test/accuracy" in final


class _LMTask:
  """loss() returns the batch's given 'ce' and 'ppl' = exp(ce), as the LM family does."""

  def loss(self, model, batch, *, train, rngs):
    del model, train, rngs
    ce = jnp.sum(batch["ce"] * batch["mask"]) / jnp.maximum(jnp.sum(batch["mask"]), 1.0)
    return ce, {"ce": ce, "ppl": jnp.exp(ce)}


def test_task_loss_perplexity_is_exp_of_the_mean_ce():
  batches = [{"ce": np.full(4, 1.0, np.float32), "mask": np.ones(4, np.float32)},
             {"ce": np.full(4, 3.0, np.float32), "mask": np.array([1, 1, 0, 0], np.float32)}]
  ctx = types.SimpleNamespace(task=_LMTask(), batches=lambda split: iter(batches))
  out = task_loss.TaskLoss(("a", "b"))(None, ctx)
  mean_ce = (4 * 1.0 + 2 * 3.0) / 6
  for split in ("a", "b"):
    assert out[f"{split}/ce"] == pytest.approx(mean_ce)
    assert out[f"{split}/ppl"] == pytest.approx(math.exp(mean_ce))  # not the mean of exp(ce)
