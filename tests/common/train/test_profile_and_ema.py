"""Optional trainer features: a profiler trace of chosen steps, and the EMA of parameters."""
import glob
import os

import jax
import numpy as np

from common.train import toy_task, trainer


def test_profile_trace_and_ema(tmp_path):
  c = toy_task.get_config()
  c.train.num_steps = c.train.checkpoint_every = 6
  c.train.profile_steps = (2, 4)
  c.optimizer.ema_decay = 0.5
  final = trainer.train(c, str(tmp_path), task=toy_task.ToyTask(c))
  traces = glob.glob(os.path.join(tmp_path, "profile", "**", "*.xplane.pb"), recursive=True)
  assert traces, "no profiler trace written"
  # The EMA parameters are evaluated beside the raw ones.
  assert "eval/ema/loss/test/loss" in final and "eval/loss/test/loss" in final
  _, state, _ = trainer.restore_for_eval(c, str(tmp_path), task=toy_task.ToyTask(c))
  ema, params = jax.device_get(state["ema_params"]), jax.device_get(state["params"])
  diff = [np.abs(a - b).max() for a, b in zip(jax.tree.leaves(ema), jax.tree.leaves(params))]
  assert max(diff) > 0  # EMA lags the parameters


def test_init_from_copies_weights_and_starts_fresh(tmp_path):
  c = toy_task.get_config()
  c.train.num_steps = c.train.checkpoint_every = 4
  src = str(tmp_path / "src")
  trainer.train(c, src, task=toy_task.ToyTask(c))
  _, src_state, _ = trainer.restore_for_eval(c, src, task=toy_task.ToyTask(c))
  ft = toy_task.get_config()
  ft.train.num_steps = ft.train.checkpoint_every = 1
  ft.optimizer.warmup_steps = 0
  ft.optimizer.learning_rate = 1e-12  # the copied weights must survive one (near-zero) step
  ft.train.init_from = f"{src}:4"
  trainer.train(ft, str(tmp_path / "ft"), task=toy_task.ToyTask(ft))
  _, ft_state, step = trainer.restore_for_eval(ft, str(tmp_path / "ft"), task=toy_task.ToyTask(ft))
  assert step == 1
  a, b = jax.device_get(src_state["params"]), jax.device_get(ft_state["params"])
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6), a, b)


class _NonNegativeHead(toy_task.ToyTask):
  """A projected-gradient task: w2's kernel is clipped at 0 after every optimiser step, and the
  hook records the learning rate it was given."""

  def project_params(self, params, step, learning_rate):
    w2 = dict(params["w2"], kernel=jax.numpy.maximum(params["w2"]["kernel"], 0.0))
    w1 = dict(params["w1"], bias=params["w1"]["bias"].at[0].set(learning_rate))
    return dict(params, w1=w1, w2=w2)


def test_project_params_hook_runs_after_every_optimiser_step(tmp_path):
  c = toy_task.get_config()
  c.train.num_steps = c.train.checkpoint_every = 3
  c.optimizer.warmup_steps = 0
  trainer.train(c, str(tmp_path), task=_NonNegativeHead(c))
  _, state, _ = trainer.restore_for_eval(c, str(tmp_path), task=_NonNegativeHead(c))
  params = jax.device_get(state["params"])
  assert (params["w2"]["kernel"] >= 0).all() and (params["w2"]["kernel"] > 0).any()
  # The hook saw the schedule's learning rate of the last step (cosine, step 2 of 3).
  assert 0 < params["w1"]["bias"][0] <= c.optimizer.learning_rate
