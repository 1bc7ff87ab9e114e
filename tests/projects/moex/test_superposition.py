"""MoE-X's FFNs in the superposition task: the hidden code per FFN kind, one trainer run end to
end with the 'features' evaluator, and the config errors."""
import json

import numpy as np
import pytest
from flax import nnx

from common.layers import activations
from common.tasks import superposition as toy
from common.train import config_io, trainer
from projects.moex import task

CONFIG = "projects/moex/configs/superposition.py"


@pytest.mark.parametrize("kind, units", [("moex", 4 * 4), ("dense_geglu", 8 * 2 // 3),
                                         ("dense_solu", 8)])
def test_hidden_code_is_the_ffn_code_of_each_kind(kind, units):
  config = config_io.load_config(f"{CONFIG}:tiny,{kind}")
  t = task.get_task(config)
  assert isinstance(t, toy.SuperpositionTask)
  model = t.build_model(nnx.Rngs(0))
  x = np.random.default_rng(1).normal(size=(5, config.data.input_dim)).astype(np.float32)
  code = toy.hidden_code(model, x, batch_size=2)
  assert code.shape == (5, units)
  assert not nnx.state(model, nnx.Intermediate)          # the probe sowed, not the model


def test_solu_is_x_times_its_softmax_over_the_hidden_units():
  x = np.array([[1.0, 2.0, -1.0]], np.float32)
  want = x * np.exp(x) / np.exp(x).sum()
  np.testing.assert_allclose(activations.get_activation("solu")(x), want, rtol=1e-6)


def test_a_tiny_trainer_run_reports_the_features_scores(tmp_path):
  config = config_io.load_config(f"{CONFIG}:tiny,moex")
  trainer.train(config, str(tmp_path))
  final = json.loads((tmp_path / "final_metrics.json").read_text())
  assert final["eval/features/units"] == 16.0
  assert 0.0 <= final["eval/features/coverage"] <= 1.0
  assert 0.0 <= final["eval/features/l0"] <= 16.0
  assert final["eval/loss/validation/mse"] > 0


def test_config_errors_name_the_field():
  with pytest.raises(ValueError, match="hidden=9 must be divisible by top_k=2"):
    config_io.load_config(f"{CONFIG}:tiny,hidden=9")
  chess = config_io.load_config("projects/moex/configs/chess.py:tiny,stdlib",
                                 **{"eval.evaluators": ("features",)})
  with pytest.raises(ValueError, match="'features' evaluator needs config.data.name"):
    trainer.setup(chess)
