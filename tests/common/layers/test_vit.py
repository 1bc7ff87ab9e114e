"""Patch embedding, position embeddings and the ViT classifier."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.layers import intermediates, patch_embed, position, vit

SMALL = dict(image_size=8, patch_size=4, channels=3, num_classes=5, width=16, depth=2,
             num_heads=2, mlp_dim=32)


def test_patchify_matches_a_loop():
  img = np.random.RandomState(0).randn(2, 8, 12, 3).astype(np.float32)
  got = np.asarray(patch_embed.patchify(jnp.asarray(img), 4))
  want = np.stack([img[:, r:r + 4, c:c + 4, :].reshape(2, -1)
                   for r in range(0, 8, 4) for c in range(0, 12, 4)], axis=1)
  np.testing.assert_array_equal(got, want)


def test_sincos_2d_layout():
  pe = position.sincos_2d(2, 3, 8)
  assert pe.shape == (1, 6, 8)
  # Token (row 1, column 2): x = 2, y = 1; frequencies 1 and 1/10000.
  np.testing.assert_allclose(pe[0, 5], [np.sin(2), np.sin(2e-4), np.cos(2), np.cos(2e-4),
                                        np.sin(1), np.sin(1e-4), np.cos(1), np.cos(1e-4)],
                             rtol=1e-6)
  with pytest.raises(ValueError, match="width % 4"):
    position.sincos_2d(2, 2, 6)


@nnx.jit
def _forward(model, images):
  return model(images), intermediates.pop_layer_stats(model)


# bfloat16 makes equal activations likely, where 'threshold' keeps every tie: 'exact' there.
@pytest.mark.parametrize("pool,posemb,dtype,mode", [("cls", "learn", jnp.float32, "threshold"),
                                                    ("gap", "sincos2d", jnp.bfloat16, "exact")])
def test_forward_per_layer_top_k_and_dtypes(pool, posemb, dtype, mode):
  model = vit.VisionTransformer(**SMALL, pool=pool, posemb=posemb, mlp_activation="relu",
                                top_k=(3, 0), topk_mode=mode, head_zero_init=False, dtype=dtype,
                                rngs=nnx.Rngs(0))
  images = jnp.asarray(np.random.RandomState(0).randn(2, 8, 8, 3), jnp.float32)
  logits, stats = jax.device_get(_forward(model, images))
  assert logits.shape == (2, 5) and logits.dtype == np.float32
  assert list(stats) == ["layer_0", "layer_1"]
  assert np.all(stats["layer_0"] <= 3 / 32 + 1e-7)
  assert (model.cls_token is not None) == (pool == "cls")
  params = nnx.to_flat_state(nnx.state(model, nnx.Param)).leaves
  assert {v.dtype for v in params} == {jnp.dtype(jnp.float32)}  # float32 params either way


def test_parameter_axes():
  model = nnx.eval_shape(lambda: vit.VisionTransformer(**SMALL, rngs=nnx.Rngs(0)))
  assert model.patch_embed.proj.kernel.get_metadata()["out_sharding"] == (None, "embed")
  assert model.posemb.embedding.get_metadata()["out_sharding"] == (None, None, "embed")
  assert model.head.kernel.get_metadata()["out_sharding"] == ("embed", None)


def test_bad_values_name_the_field():
  with pytest.raises(ValueError, match="patch_size=3 must divide image_size=8"):
    vit.VisionTransformer(**{**SMALL, "patch_size": 3}, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="top_k=.*one entry per layer"):
    vit.VisionTransformer(**SMALL, top_k=(1, 2, 3), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="pool='map'"):
    vit.VisionTransformer(**SMALL, pool="map", rngs=nnx.Rngs(0))
