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
