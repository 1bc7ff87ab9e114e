"""Paper presets: trainable parameter counts equal the official ones (no weights allocated)."""
import json

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import common  # noqa: F401
from projects.svit import PRESETS, STViT, STViTConfig, preset
from tests import golden

# Official trainable counts (shared/specs/vision.md §1.1, [RUN]); param_counts.json must agree.
EXPECTED = {"SViT-S": ("stvit_small", 25_495_624), "SViT-B": ("stvit_base", 51_691_288),
            "SViT-L": ("stvit_large", 94_971_096)}


def _trainable(config: STViTConfig) -> int:
  model = nnx.eval_shape(lambda: STViT(config, rngs=nnx.Rngs(0)))
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trainable_params(name):
  key, count = EXPECTED[name]
  assert _trainable(preset(name)) == count
  counts = json.loads(golden.folder("param_counts.json").read_text())  # the official counts
  assert counts[key]["trainable_params"] == count


def test_official_names_and_overrides():
  assert preset("stvit_base") == preset("SViT-B") == PRESETS["SViT-B"]
  cfg = preset("stvit_small", num_classes=10, drop_path_rate=0.1, dtype="bfloat16")
  assert cfg.num_classes == 10 and cfg.embed_dim == (64, 128, 320, 512)
  assert cfg.dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="preset='SViT-XL' is unknown"):
    preset("SViT-XL")
  with pytest.raises(ValueError, match=r"unknown STViTConfig field\(s\) \['depth'\]"):
    preset("SViT-B", depth=3)


@pytest.mark.parametrize("field, value, message", [
    ("num_heads", (2, 3, 7, 8), r"embed_dim\[2\]=384 is not divisible by num_heads\[2\]=7"),
    ("layerscale", (True, True, True), r"layerscale=\(True, True, True\) has 3 entries"),
    ("n_iter", (1, 0, 1, 1), r"n_iter\[1\]=0 is invalid"),
    ("stoken_size", (8, (4, 0), 1, 1), r"stoken_size\[1\]=\(4, 0\) is invalid"),
    ("projection", None, "projection=None is invalid"),
    ("drop_path_rate", 1.0, r"drop_path_rate=1.0 must be in \[0, 1\)"),
    ("num_classes", -1, "num_classes=-1"),
    ("remat_policy", "some", "remat_policy"),
    ("param_dtype", "float8", "param_dtype"),
])
def test_bad_config_names_field(field, value, message):
  with pytest.raises(ValueError, match=message):
    preset("SViT-B", **{field: value})
