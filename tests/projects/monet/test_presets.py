"""Paper presets: exact parameter counts (nnx.eval_shape, nothing allocated) and config validation."""
import json

import pytest

from projects.monet import MonetConfig
from projects.monet.config import PRESETS, count_params, get_preset
from tests import golden


@pytest.fixture(scope="module")
def reference():
  with open(golden.folder("monet") / "param_counts.json") as f:
    return json.load(f)["counts"]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_param_counts_match_official(name, reference):
  ref = reference[name]
  cfg = get_preset(name)
  for key, value in ref["kwargs"].items():  # the preset is the config the counts were made with
    if hasattr(cfg, key):
      assert getattr(cfg, key) == value, (name, key)
  counts = count_params(cfg)
  assert counts == {k: ref[k] for k in counts}, name


def test_bad_preset_name():
  with pytest.raises(ValueError, match="vd-1.4B"):
    get_preset("vd-1.3B")


@pytest.mark.parametrize("changes, field", [
    (dict(moe_decompose="diagonal"), "moe_decompose"),
    (dict(hidden_size=65), "hidden_size"),
    (dict(moe_dim=7), "moe_dim"),
    (dict(moe_topk=16), "moe_topk"),
    (dict(num_key_value_heads=3), "num_key_value_heads"),
    (dict(hidden_act="tanh"), "hidden_act"),
    (dict(moe_groups=0), "moe_groups"),
])
def test_bad_config_names_the_field(changes, field):
  base = dict(vocab_size=256, hidden_size=64, num_hidden_layers=4, num_attention_heads=4, moe_dim=8,
              moe_heads=2, moe_experts=16, moe_topk=4, moe_groups=2)
  base.update(changes)
  with pytest.raises(ValueError, match=field):
    MonetConfig(**base)
