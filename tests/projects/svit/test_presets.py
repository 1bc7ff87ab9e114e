"""Paper presets: trainable parameter counts equal the official ones (no weights allocated)."""
import json
import pathlib

import jax
import pytest
from flax import nnx

import common  # noqa: F401
from projects.svit import STViT, STViTConfig, get_preset, svit_base

PARAM_COUNTS = pathlib.Path(__file__).resolve().parents[3].parent / "shared" / "golden" / \
    "param_counts.json"
# Official trainable counts (shared/specs/vision.md §1.1, [RUN]); param_counts.json must agree.
EXPECTED = {"SViT-S": ("stvit_small", 25_495_624), "SViT-B": ("stvit_base", 51_691_288),
            "SViT-L": ("stvit_large", 94_971_096)}


def _trainable(config: STViTConfig) -> int:
  model = nnx.eval_shape(lambda: STViT(config, rngs=nnx.Rngs(0)))
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trainable_params(name):
  key, count = EXPECTED[name]
  if PARAM_COUNTS.is_file():
    count_json = json.loads(PARAM_COUNTS.read_text())[key]["trainable_params"]
    assert count_json == count
  assert _trainable(get_preset(name)) == count


def test_aliases_and_overrides():
  assert get_preset("stvit_base") == get_preset("SViT-B") == svit_base()
  cfg = get_preset("svit_small", num_classes=10, drop_path_rate=0.1)
  assert cfg.num_classes == 10 and cfg.embed_dim == (64, 128, 320, 512)
  with pytest.raises(ValueError, match="preset='SViT-XL' is unknown"):
    get_preset("SViT-XL")
  with pytest.raises(ValueError, match=r"unknown STViTConfig field\(s\) \['depth'\]"):
    svit_base(depth=3)


@pytest.mark.parametrize("field, value, message", [
    ("num_heads", (2, 3, 7, 8), r"embed_dim\[2\]=384 is not divisible by num_heads\[2\]=7"),
    ("layerscale", (True, True, True), r"layerscale=\(True, True, True\) has 3 entries"),
    ("n_iter", (1, 0, 1, 1), r"n_iter\[1\]=0 is invalid"),
    ("stoken_size", (8, (4, 0), 1, 1), r"stoken_size\[1\]=\(4, 0\) is invalid"),
    ("projection", None, "projection=None is invalid"),
    ("drop_path_rate", 1.0, r"drop_path_rate=1.0 must be in \[0, 1\)"),
    ("num_classes", -1, "num_classes=-1"),
])
def test_bad_config_names_field(field, value, message):
  with pytest.raises(ValueError, match=message):
    svit_base(**{field: value})
