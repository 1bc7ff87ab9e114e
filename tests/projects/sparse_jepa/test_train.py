"""Training through the shared trainer: a few steps, the EMA target, and the step-level EMA rule."""
import json
import logging
import os

import jax
import numpy as np
import pytest

from common.train import config_io, metrics as metrics_lib, trainer
from projects.sparse_jepa import jepa

CONFIG = "projects/sparse_jepa/configs/mnist_demo.py:sparse,tiny"


@pytest.fixture(scope="module", autouse=True)
def _quiet_masks():
  logging.getLogger("projects.sparse_jepa.masks").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("sparse_jepa_tiny"))
  # A checkpoint per step: the EMA of each step is then checked from the saved states.
  config = config_io.load_config(CONFIG, **{"train.checkpoint_every": 1,
                                            "train.keep_checkpoints": 3})
  final = trainer.train(config, workdir)
  return config, workdir, final


def _flat(tree):
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def test_train_runs_and_reports(trained):
  config, workdir, final = trained
  assert np.isfinite(final["train/loss"]) and np.isfinite(final["train/ijepa_loss"])
  for key in ("train/sparsity/active_units", "train/sparsity/total_correlation",
              "eval/linear_probe/test/accuracy", "eval/lowlevel_probe/test/r2/mean"):
    assert key in final, sorted(final)
  with open(os.path.join(workdir, "final_metrics.json")) as f:
    assert json.load(f)["step"] == config.train.num_steps
  rows = metrics_lib.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  assert [r["step"] for r in rows if "loss" in r] == list(range(1, config.train.num_steps + 1))


def test_target_encoder_moved_by_ema_only(trained):
  config, workdir, _ = trained
  first, last = (trainer.restore_for_eval(config, workdir, step=s)[1] for s in (1, 3))
  target = lambda st: _flat({k: v for k, v in st["model_state"][jepa.TARGET].items()
                             if k != "pos_embed"})
  moved = target(last) - target(first)
  online_moved = _flat(last["params"]["encoder"]) - _flat(first["params"]["encoder"])
  assert np.abs(moved).max() > 0
  # Momentum ~0.996: the target moves ~100x less than the online encoder over the same steps.
  assert np.abs(moved).max() < 0.05 * np.abs(online_moved).max()


def test_each_step_is_the_official_ema(trained):
  config, workdir, _ = trained
  states = {s: trainer.restore_for_eval(config, workdir, step=s)[1] for s in (2, 3)}
  # The EMA after update i (0-based; the step from 2 to 3 is i = 2) uses the official
  # m_i = ema0 + i * (ema1 - ema0) / (num_steps * ipe_scale).
  m = 0.996 + 2 * (1.0 - 0.996) / config.train.num_steps
  old_t = states[2]["model_state"][jepa.TARGET]
  new_t = states[3]["model_state"][jepa.TARGET]
  want = jax.tree.map(lambda t, o: m * t + (1 - m) * o,
                      {k: v for k, v in old_t.items() if k != "pos_embed"},
                      states[3]["params"]["encoder"])
  got = {k: v for k, v in new_t.items() if k != "pos_embed"}
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), got, want)
