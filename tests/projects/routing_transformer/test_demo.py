"""The recall demo (main job) end to end at smoke settings: every mixer trains, is scored by
distance and costed; and the harness's config errors name the field."""
import math

import pytest

from common.tasks import mixer_lm
from common.train import config_io
from projects.routing_transformer import demo


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
  return demo.run(str(tmp_path_factory.mktemp("rt_demo")), quick=True)


def test_demo_rows_cover_every_mixer(rows):
  assert all(set(r) == {"project", "experiment", "metric", "paper", "measured"} for r in rows)
  mixers = demo.SEEDED + demo.SINGLE
  readouts = rows[-len(demo.ROUTING):]
  for r in rows[:-len(demo.ROUTING)]:
    assert " / ".join(mixers) in r["metric"]
  assert all("nan" not in r["measured"].lower() for r in rows)
  far = [float(v) for v in rows[0]["measured"].split(" / ")]
  assert len(far) == len(mixers) and all(0 <= v <= 100 for v in far)
  flops, memory = rows[4]["measured"].split(" ; ")
  flops = dict(zip(mixers, map(float, flops.split(" / "))))
  assert flops["dense"] > flops["local"] > 0  # the cost column measures the mixer
  # Each routing row's window read-out: shared <= in any window, as percentages.
  for name, r in zip(demo.ROUTING, readouts):
    assert r["metric"].startswith(f"{name}: far queries sharing a routing window")
    shared, query_in = map(float, r["measured"].split(" / "))
    assert 0 <= shared <= query_in <= 100


def test_lucidrains_row_is_the_routing_row_with_two_options():
  official, lucid = (demo._config(m, 0, False) for m in ("routing", "routing_lucidrains"))
  assert lucid.model.mixer == official.model.mixer == "routing"
  options = official.model.mixer_options.to_dict()
  assert lucid.model.mixer_options.to_dict() == dict(options, mask_self=True, scale_logits=True)
  lucid.model.mixer_options = official.model.mixer_options
  assert lucid.to_dict() == official.to_dict()


def test_chance_is_the_answers_unigram_entropy(rows):
  assert f"{math.log(8):.2f}" in rows[2]["metric"]


def test_misspelled_model_field_and_mixer_are_named():
  config = config_io.load_config(f"{demo.CONFIG}:tiny,mixer=dense")
  with config.model.unlocked():
    config.model.hiden = 3
  with pytest.raises(ValueError, match="did you mean config.model.hidden"):
    mixer_lm.from_config(config.model)
  config = config_io.load_config(f"{demo.CONFIG}:tiny,mixer=densee")
  task = mixer_lm.get_task(config)
  with pytest.raises(ValueError, match="densee.*choose one of"):
    task.build_model(__import__("flax").nnx.Rngs(0))


def test_recall_long_changes_only_the_steps():
  base, long = demo._config("routing", 1, False), demo._config("routing", 1, False, 1000)
  assert (base.train.num_steps, long.train.num_steps) == (200, 1000)
  assert long.seed == base.seed == 1
  assert long.model.to_dict() == base.model.to_dict() and long.data == base.data
