"""The shared superposition task: its score on known codes, and the FFN-width check that every
project's config meets through it."""
import numpy as np
import pytest

from common.tasks import superposition as toy
from common.train import config_io, trainer


def test_score_of_an_indicator_code_and_of_a_mixed_one():
  rng = np.random.default_rng(0)
  features = (rng.random((500, 6)) < 0.2) * rng.random((500, 6))
  indicators = (features > 0).astype(np.float32) * 3.0
  s = toy.score(indicators, features)
  assert s["coverage"] == pytest.approx(1.0) and s["unit_f1"] == pytest.approx(1.0)
  assert s["l0"] == pytest.approx((features > 0).sum(1).mean()) and s["units"] == 6
  mixed = indicators[:, :3] + indicators[:, 3:]          # each unit fires for two features
  m = toy.score(mixed, features)
  assert m["unit_f1"] < 0.8 and m["coverage"] < 0.8 and m["alive"] == 1.0


def test_base_config_is_shared_and_steps_override_the_length():
  moex = config_io.load_config("projects/moex/configs/superposition.py:tiny")
  monet = config_io.load_config("projects/monet/configs/superposition.py:tiny")
  for part in ("data", "optimizer", "train", "eval"):
    assert moex[part].to_dict() == monet[part].to_dict(), part
  c = toy.base_config(tiny=False, steps=300)
  assert (c.train.num_steps, c.train.checkpoint_every, c.optimizer.warmup_steps) == (300, 300, 30)


@pytest.mark.parametrize("spec, field", [
    ("projects/moex/configs/superposition.py:tiny", "d_model"),
    ("projects/monet/configs/superposition.py:tiny", "hidden_size")])
def test_an_ffn_width_other_than_the_feature_count_is_named(spec, field):
  config = config_io.load_config(spec, **{f"model.{field}": 12})
  with pytest.raises(ValueError, match=f"config.model.{field}=12 must equal "
                                       "config.data.num_features=16"):
    trainer.setup(config)
