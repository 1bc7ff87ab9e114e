"""A 3-step trainer.train run on the 'tiny' config: finite loss, centroids and parameters move.

The initial values are known without building a second state (which would cost another
compile): ema_count starts at 0, ema_means equals means, means rows are LayerNormed (mean 0,
variance 1), LayerNorm scales start at 1 and biases at 0.
"""
import json
import os

import jax
import numpy as np
import pytest

from common.train import config_io, metrics as metrics_lib, trainer


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  config = config_io.load_config("projects/routing_transformer/configs/stdlib_demo.py:tiny")
  config.train.progress_bar = False
  workdir = str(tmp_path_factory.mktemp("rt_tiny"))
  final = trainer.train(config, workdir)
  state = trainer.restore_for_eval(config, workdir)[1]
  flat = {jax.tree_util.keystr(p): np.asarray(v) for p, v in
          jax.tree_util.tree_leaves_with_path({"params": state["params"],
                                               "model_state": state["model_state"]})}
  return workdir, final, flat


def test_loss_is_finite(tiny_run):
  workdir, final, _ = tiny_run
  assert np.isfinite(final["train/loss"])
  assert np.isfinite(final["eval/loss/validation/bits_per_byte"])
  with open(os.path.join(workdir, "final_metrics.json")) as f:
    assert json.load(f)["step"] == 3
  rows = metrics_lib.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  assert all(np.isfinite(r["loss"]) for r in rows if "loss" in r)


def test_the_loss_is_also_scored_by_repeat_distance(tiny_run):
  """The config's 'repeat_distance' evaluator: every scored byte falls in exactly one bucket."""
  final = tiny_run[1]
  key = "eval/repeat_distance/validation/repeat_"
  fractions = [v for k, v in final.items() if k.startswith(key) and k.endswith("_fraction")]
  assert len(fractions) == 5 and sum(fractions) == pytest.approx(1.0)
  assert final[key + "none_count"] > 0 and final[key + "le128_count"] > 0
  assert np.isfinite(final[key + "le128_ce"])


def test_centroids_changed_inside_the_train_step(tiny_run):
  _, _, flat = tiny_run
  layers = sorted({k.split("['means']")[0] for k in flat if k.endswith("['means']")})
  assert layers and all(k.startswith("['model_state']") for k in layers)
  for layer in layers:
    means, ema_means = flat[layer + "['means']"], flat[layer + "['ema_means']"]
    ema_count = flat[layer + "['ema_count']"]
    # 3 steps of 8 x 64 tokens, 2 heads: each head's counts sum to (1 - 0.999^3) * 512.
    np.testing.assert_allclose(ema_count.sum(-1), (1 - 0.999 ** 3) * 8 * 64, rtol=1e-3)
    assert not np.allclose(means, ema_means)
    assert not np.allclose(means.var(-1), 1.0, atol=1e-2)  # no longer LN(randn) rows


def test_parameters_changed(tiny_run):
  _, _, flat = tiny_run
  scales = [v for k, v in flat.items() if k.startswith("['params']") and k.endswith("['scale']")]
  biases = [v for k, v in flat.items() if k.startswith("['params']") and k.endswith("['bias']")]
  assert scales and biases
  assert all(not np.allclose(s, 1.0) for s in scales)
  assert all(np.any(b != 0.0) for b in biases)


def test_sample_mode_continues_the_prompt_with_the_cache(tiny_run):
  """main.py --mode=sample: the trained checkpoint continues a prompt (greedy is repeatable)."""
  from common.train import sample
  workdir = tiny_run[0]
  config = config_io.load_config("projects/routing_transformer/configs/stdlib_demo.py:tiny")
  kw = dict(num_tokens=12, temperature=0.0, seed=0)
  text = sample.sample(config, workdir, "def f(x):", **kw)
  assert text.startswith("def f(x):") and len(text.encode()) >= len("def f(x):") + 1
  assert sample.sample(None, workdir, "def f(x):", **kw) == text   # the saved config
  with pytest.raises(ValueError, match="exceeds the model's sequence length 64"):
    sample.sample(config, workdir, "x" * 60, **kw)
  with pytest.raises(ValueError, match="--prompt"):
    sample.sample(config, workdir, "", **kw)
