"""Monet's experts in the superposition task: the scored code is the one the output is linear
in, a tiny trainer run reports the 'features' scores, and the dense baseline is refused."""
import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.tasks import superposition as toy
from common.train import config_io, trainer
from projects.monet import experts as experts_lib
from projects.monet import task

CONFIG = "projects/monet/configs/superposition.py"


@pytest.mark.parametrize("spec, copies", [("tiny,hd", 1), ("tiny,vd", 2)])
def test_the_scored_code_rebuilds_the_ffn_output(spec, copies):
  config = config_io.load_config(f"{CONFIG}:{spec}")
  model = task.get_task(config).build_model(nnx.Rngs(0))
  x = np.random.default_rng(1).normal(size=(64, config.data.input_dim)).astype(np.float32)
  h = model.inp(jnp.asarray(x))
  code = toy.hidden_code(model, x, batch_size=16)
  m = config.model
  assert code.shape == (64, copies * m.moe_experts * m.moe_dim)
  assert 0 < np.mean(code != 0) < 1                      # experts no head selects read zeros
  ffn = model.ffn
  g1, g2 = ffn.router(h[:, None, :])
  rebuilt = (code @ experts_lib.down_projection(ffn.experts)
             + experts_lib.output_bias(ffn.experts, g1, g2)[:, 0])
  np.testing.assert_allclose(rebuilt, ffn(h, train=False)[0], rtol=1e-5, atol=1e-6)


def test_a_tiny_trainer_run_reports_the_features_and_routing(tmp_path):
  trainer.train(config_io.load_config(f"{CONFIG}:tiny,vd"), str(tmp_path))
  final = json.loads((tmp_path / "final_metrics.json").read_text())
  assert final["eval/features/units"] == 2 * 4 * 4                       # VD: 2 * E * m
  assert 0.0 <= final["eval/features/coverage"] <= 1.0
  assert final["train/uniformity"] > 0 and final["eval/loss/validation/mse"] > 0


def test_the_dense_baseline_is_refused_with_the_reason():
  config = config_io.load_config(f"{CONFIG}:tiny", **{"model.moe_decompose": "dense"})
  with pytest.raises(ValueError, match="moe_decompose='dense' has no routed units"):
    trainer.setup(config)
  assert isinstance(task.get_task(config_io.load_config(f"{CONFIG}:tiny")),
                    toy.SuperpositionTask)
