"""SViT as a dense-prediction backbone: `features`, `feature_info`, a tiny segmentation head."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import common  # noqa: F401
from common.tasks import dense_features
from projects.svit import STViT, STViTConfig, config

TINY = dict(embed_dim=(8, 16, 24, 32), depths=(1, 1, 1, 1), num_heads=(1, 2, 3, 4),
            n_iter=(1, 1, 1, 1), stoken_size=(4, 2, 1, 1), projection=16, num_classes=0)
SIZE = 32  # the smallest input giving every stage at least one pixel (reduction 32)


def _images(n=2):
  return jax.random.normal(jax.random.key(1), (n, SIZE, SIZE, 3))


def test_feature_info_of_presets_and_bad_out_indices():
  info = config.preset("SViT-S").feature_info()
  assert [(f.stage, f.channels, f.reduction) for f in info] == [
      (0, 64, 4), (1, 128, 8), (2, 320, 16), (3, 512, 32)]
  info = config.preset("SViT-B", out_indices=(1, 3)).feature_info()
  assert [(f.stage, f.channels, f.reduction) for f in info] == [(1, 192, 8), (3, 512, 32)]
  for bad in [(), (0, 4), (2, 1), (1, 1), "0"]:
    with pytest.raises(ValueError, match="out_indices"):
      STViTConfig(**TINY, out_indices=bad)
  assert "out_indices" in config.ARCH_FIELDS and "out_indices" not in config.OFFICIAL_FIELDS


def test_features_are_the_block_taps_and_match_feature_info():
  model = STViT(STViTConfig(**TINY), rngs=nnx.Rngs(0))
  x = _images()
  infos = model.feature_info()

  @nnx.jit
  def run(model):
    maps = model.features(x)
    _, stages = model.forward_stages(x, taps="blocks")
    model.config = STViTConfig(**TINY, out_indices=(1, 2))  # a subset; later stages not run
    return maps, stages, model.features(x)

  maps, stages, sub = run(model)
  for m, s, info in zip(maps, stages, infos, strict=True):
    assert m.shape == (2, SIZE // info.reduction, SIZE // info.reduction, info.channels)
    np.testing.assert_array_equal(m, s)
  assert len(sub) == 2
  np.testing.assert_array_equal(sub[0], stages[1])
  np.testing.assert_array_equal(sub[1], stages[2])


def test_segmentation_head_gives_pixel_logits_and_backbone_gradients():
  # Two stages keep the compile short; the four-stage maps are checked above.
  two = dict(TINY, embed_dim=(8, 16), depths=(1, 1), num_heads=(1, 2), n_iter=(1, 1),
             stoken_size=(4, 1), layerscale=(False, False), out_indices=(0, 1))
  seg = dense_features.Segmenter(STViT(STViTConfig(**two), rngs=nnx.Rngs(0)), 3, width=8,
                                 rngs=nnx.Rngs(2))
  x = _images()
  labels = jax.random.randint(jax.random.key(3), (2, SIZE, SIZE), 0, 3)

  (loss, logits), grads = dense_features.segmentation_loss_and_grads(seg, x, labels)
  assert logits.shape == (2, SIZE, SIZE, 3) and np.isfinite(float(loss))
  g = nnx.state(grads, nnx.Param)
  leaves = jax.tree.leaves(g)
  assert all(bool(jnp.all(jnp.isfinite(v))) for v in leaves)
  bb = g["backbone"]
  for part in (bb["patch_embed"], bb["layers"][0]["blocks"], bb["layers"][1]["blocks"]):
    assert sum(float(jnp.sum(jnp.abs(v))) for v in jax.tree.leaves(part)) > 0
