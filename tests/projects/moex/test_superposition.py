"""The MoE-X superposition task: its score on known codes, its hidden code per FFN kind, one
trainer run end to end with the 'features' evaluator, and its config errors."""
import json

import numpy as np
import pytest
from flax import nnx

from common.layers import activations
from common.train import config_io, trainer
from projects.moex import superposition, task

CONFIG = "projects/moex/configs/superposition.py"


def test_score_of_an_indicator_code_and_of_a_mixed_one():
  rng = np.random.default_rng(0)
  features = (rng.random((500, 6)) < 0.2) * rng.random((500, 6))
  indicators = (features > 0).astype(np.float32) * 3.0
  s = superposition.score(indicators, features)
  assert s["coverage"] == pytest.approx(1.0) and s["unit_f1"] == pytest.approx(1.0)
  assert s["l0"] == pytest.approx((features > 0).sum(1).mean()) and s["units"] == 6
  mixed = indicators[:, :3] + indicators[:, 3:]          # each unit fires for two features
  m = superposition.score(mixed, features)
  assert m["unit_f1"] < 0.8 and m["coverage"] < 0.8 and m["alive"] == 1.0


@pytest.mark.parametrize("kind, units", [("moex", 4 * 4), ("dense_geglu", 8 * 2 // 3),
                                         ("dense_solu", 8)])
def test_hidden_code_is_the_ffn_code_of_each_kind(kind, units):
  config = config_io.load_config(f"{CONFIG}:tiny,{kind}")
  t = task.get_task(config)
  assert isinstance(t, superposition.SuperpositionTask)
  model = t.build_model(nnx.Rngs(0))
  x = np.random.default_rng(1).normal(size=(5, config.data.input_dim)).astype(np.float32)
  code = superposition.hidden_code(model, x, batch_size=2)
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
  config = config_io.load_config(f"{CONFIG}:tiny", **{"model.d_model": 12})
  with pytest.raises(ValueError, match="config.model.d_model=12 must equal"):
    trainer.setup(config)
  chess = config_io.load_config("projects/moex/configs/chess.py:tiny,stdlib",
                                 **{"eval.evaluators": ("features",)})
  with pytest.raises(ValueError, match="'features' evaluator needs config.data.name"):
    trainer.setup(chess)
