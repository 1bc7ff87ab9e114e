"""The configured evaluators run end to end on synthetic batches through an EvalContext."""
import jax
import numpy as np
import pytest
from flax import nnx

from common.eval import context, registry
from projects.lazy_neuron import task as task_lib


class _SyntheticTask:
  """Wraps a real task, replacing its data with two synthetic batches (the last one padded)."""

  def __init__(self, task, make_batch):
    self.task, self.make_batch = task, make_batch

  def __getattr__(self, name):
    return getattr(self.task, name)

  def eval_data(self, split, *, process_index, process_count, batch_size):
    del process_index, process_count
    rs = np.random.RandomState(len(split))
    for real in (batch_size, batch_size - 1):
      batch = self.make_batch(rs, batch_size)
      batch["mask"] = (np.arange(batch_size) < real).astype(np.float32)
      yield batch


def _images(rs, b):
  return {"image": rs.rand(b, 28, 28, 1).astype(np.float32),
          "label": rs.randint(0, 10, b).astype(np.int32)}


def _spans(rs, b):
  targets = rs.randint(2, 300, (b, 8)).astype(np.int32)
  return {"encoder_input_tokens": rs.randint(2, 300, (b, 32)).astype(np.int32),
          "decoder_input_tokens": np.concatenate([np.zeros((b, 1), np.int32), targets[:, :-1]],
                                                 axis=1),
          "decoder_target_tokens": targets, "decoder_loss_weights": np.ones((b, 8), np.float32)}


@pytest.mark.parametrize("name,arg,make_batch,expected", [
    ("vit_mnist", "tiny,topk", _images,
     {"loss/test/accuracy", "classification/test/ece", "sparsity/train/act_nonzero/layer_1",
      "sparsity/test/act_nonzero/mean", "robustness/test/gaussian_noise/sigma_1/accuracy"}),
    ("t5_span", "tiny", _spans,
     {"loss/validation/loss", "loss/validation/accuracy",
      "sparsity/train/act_nonzero/encoder_layer_0",
      "sparsity/validation/act_nonzero/decoder_layer_0"}),
])
def test_configured_evaluators_run(config_module, name, arg, make_batch, expected):
  config = config_module(name).get_config(arg)
  task = task_lib.get_task(config)
  model = task.build_model(nnx.Rngs(0))
  ctx = context.EvalContext(config=config, task=_SyntheticTask(task, make_batch))
  results = {}
  for evaluator_name, evaluator in registry.build(config, task).items():
    for key, value in evaluator(model, ctx).items():
      results[f"{evaluator_name}/{key}"] = value
  assert expected <= set(results), sorted(results)
  assert all(np.isfinite(v) for v in results.values()), results
  assert not jax.tree.leaves(nnx.pop(model, nnx.Intermediate))
