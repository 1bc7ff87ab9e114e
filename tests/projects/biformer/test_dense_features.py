"""BiFormer as a dense-prediction backbone: `features`, `feature_info`, the official dense
settings (`dense_preset`: n_win, auto_pad, per-stage output LayerNorm) and a tiny segmentation
head."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import common  # noqa: F401
from common.tasks import dense_features
from projects.biformer import BiFormer, BiFormerConfig, config

TINY = dict(depth=(1, 1, 1, 1), embed_dim=(8, 16, 24, 32), qk_dims=(8, 16, 24, 32), head_dim=8,
            mlp_ratios=(2, 2, 2, 2), topks=(4, 4, -2, -2), n_win=4, num_classes=0)
SIZE = 64  # stage maps 16, 8, 4, 2: the routed stages divide by n_win=4


def _images(n=2):
  return jax.random.normal(jax.random.key(1), (n, SIZE, SIZE, 3))


def _trainable(cfg):
  model = nnx.eval_shape(lambda: BiFormer(cfg, rngs=nnx.Rngs(0)))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_feature_info_dense_presets_and_bad_fields():
  for name, dims in [("BiFormer-T", (64, 128, 256, 512)), ("BiFormer-B", (96, 192, 384, 768))]:
    info = config.preset(name).feature_info()
    assert [(f.stage, f.channels, f.reduction) for f in info] == list(
        zip(range(4), dims, (4, 8, 16, 32)))
  seg = config.dense_preset("BiFormer-S", "segmentation", num_classes=0)
  det = config.dense_preset("biformer_small", "detection", out_indices=(1, 2, 3))
  assert (seg.n_win, seg.auto_pad, seg.out_norm) == (8, True, True)
  assert (det.n_win, det.auto_pad, det.out_norm, det.out_indices) == (16, True, True, (1, 2, 3))
  # The extra norms add a scale and a bias per channel of every stage.
  base = config.preset("BiFormer-T")
  assert _trainable(config.dense_preset("BiFormer-T", "segmentation")) - _trainable(base) == \
      2 * sum(base.embed_dim)
  with pytest.raises(ValueError, match="task='depth'"):
    config.dense_preset("BiFormer-T", "depth")
  for bad in [(), (0, 4), (3, 1)]:
    with pytest.raises(ValueError, match="out_indices"):
      BiFormerConfig(**TINY, out_indices=bad)
  with pytest.raises(ValueError, match="out_norm"):
    BiFormerConfig(**TINY, out_norm=1)


def test_features_equal_stage_outputs_and_out_norm_only_touches_outputs():
  plain = BiFormer(BiFormerConfig(**TINY), rngs=nnx.Rngs(0))
  normed = BiFormer(BiFormerConfig(**TINY, out_norm=True), rngs=nnx.Rngs(0))  # same weights
  x = _images()
  infos = plain.feature_info()

  @nnx.jit
  def run(plain, normed):
    return plain.features(x), plain.forward_features(x).stages, normed.features(x)

  maps, stages, normed_maps = run(plain, normed)
  for m, s, n, info in zip(maps, stages, normed_maps, infos, strict=True):
    assert m.shape == (2, SIZE // info.reduction, SIZE // info.reduction, info.channels)
    np.testing.assert_array_equal(m, s)
    # Initial LayerNorm (scale 1, bias 0) of the un-normed map: the next stage saw raw maps.
    mu = m.mean(-1, keepdims=True)
    ref = (m - mu) / np.sqrt(((m - mu) ** 2).mean(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(n, ref, atol=2e-5)


def test_segmentation_head_on_the_dense_variant_gets_backbone_gradients():
  # The segmentation settings at tiny size: n_win=3 does not divide the 8x8 / 4x4 routed maps
  # of a 32x32 input, so auto_pad runs; per-stage output norms on. The two routed stages only
  # (out_indices) keep the compile short; the four-stage maps are checked above.
  cfg = BiFormerConfig(**dict(TINY, n_win=3), auto_pad=True, out_norm=True, out_indices=(0, 1))
  seg = dense_features.Segmenter(BiFormer(cfg, rngs=nnx.Rngs(0)), 3, width=8, rngs=nnx.Rngs(2))
  size = 32
  x = jax.random.normal(jax.random.key(1), (2, size, size, 3))
  labels = jax.random.randint(jax.random.key(3), (2, size, size), 0, 3)

  (loss, logits), grads = dense_features.segmentation_loss_and_grads(seg, x, labels)
  assert logits.shape == (2, size, size, 3) and np.isfinite(float(loss))
  g = nnx.state(grads, nnx.Param)
  assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(g))
  bb = g["backbone"]
  for part in (bb["downsample_layers"][0], bb["stages"][0], bb["stages"][1],
               bb["extra_norms"][0], bb["extra_norms"][1]):
    assert sum(float(jnp.sum(jnp.abs(v))) for v in jax.tree.leaves(part)) > 0
