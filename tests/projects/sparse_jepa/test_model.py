"""Unit tests of the I-JEPA encoder/predictor pieces against numpy references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import common  # noqa: F401
from projects.sparse_jepa import losses, model
from projects.sparse_jepa.pos_embed import sincos_2d
from projects.sparse_jepa.tensors import apply_masks, repeat_interleave_batch, stack_masks


def test_sincos_layout():
  emb = sincos_2d(8, 3)  # 9 patches, row-major
  # First half encodes the column (official meshgrid(w, h) quirk), second half the row.
  col, row = 2, 1
  i = row * 3 + col
  omega = 1.0 / 10000**(np.arange(2) / 2.0)
  np.testing.assert_allclose(emb[i, :4], np.r_[np.sin(col * omega), np.cos(col * omega)], atol=1e-7)
  np.testing.assert_allclose(emb[i, 4:], np.r_[np.sin(row * omega), np.cos(row * omega)], atol=1e-7)
  with pytest.raises(ValueError, match="divisible by 4"):
    sincos_2d(6, 3)


def test_apply_masks_and_repeat_interleave_order():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 6, 3)).astype(np.float32)
  masks = [np.array([[0, 5], [1, 2]]), np.array([[3, 4], [0, 0]])]
  out = np.asarray(apply_masks(jnp.asarray(x), masks))
  ref = np.concatenate([np.stack([x[b, m[b]] for b in range(2)]) for m in masks])
  np.testing.assert_array_equal(out, ref)
  rep = np.asarray(repeat_interleave_batch(jnp.asarray(ref), 2, repeat=3))
  ref_rep = np.concatenate([np.concatenate([ref[i * 2:(i + 1) * 2]] * 3) for i in range(2)])
  np.testing.assert_array_equal(rep, ref_rep)
  with pytest.raises(ValueError, match="shapes"):
    stack_masks([np.zeros((2, 3), int), np.zeros((2, 4), int)])
  with pytest.raises(ValueError, match="dtype"):
    stack_masks(np.zeros((2, 3), np.float32))


def test_smooth_l1_and_target_ln_numpy():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(2, 4, 5)) * 2, rng.normal(size=(2, 4, 5))
  d = np.abs(a - b)
  ref = np.where(d < 1, 0.5 * d * d, d - 0.5).mean()
  got = losses.smooth_l1(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
  np.testing.assert_allclose(got, ref, rtol=1e-6)
  ln = (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + 1e-5)
  np.testing.assert_allclose(losses.target_layer_norm(jnp.asarray(a, jnp.float32)), ln, atol=1e-5)


def test_preset_parameter_counts_without_allocation():
  # Official counts (spec §4.4): ViT-Tiny at 32px / patch 4 holds 5.36 M parameters including the
  # 64x192 fixed pos-embed; the depth-6, 96-d predictor 0.71 M.
  enc = nnx.eval_shape(lambda: model.vit_encoder("vit_tiny", img_size=32, patch_size=4,
                                                  rngs=nnx.Rngs(0)))
  pred = nnx.eval_shape(lambda: model.VisionTransformerPredictor(
      num_patches=64, embed_dim=192, predictor_embed_dim=96, depth=6, num_heads=3,
      rngs=nnx.Rngs(0)))
  count = lambda m, f: sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(m, f)))
  assert count(enc, nnx.Param) == 5_348_160
  assert count(enc, model.FixedEmbed) == 64 * 192
  assert count(pred, nnx.Param) == 708_480  # + 6,144 fixed pos-embed = 0.71 M
  assert count(pred, model.FixedEmbed) == 64 * 96
  with pytest.raises(ValueError, match="allowed"):
    model.vit_encoder("vit_unknown")


def test_bad_inputs_raise():
  enc = nnx.eval_shape(lambda: model.VisionTransformer(
      img_size=8, patch_size=4, embed_dim=8, depth=1, num_heads=2, rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match="NHWC"):
    enc(jax.ShapeDtypeStruct((1, 3, 8, 8), jnp.float32))
  with pytest.raises(ValueError, match="patch_size"):
    model.VisionTransformer(img_size=10, patch_size=4, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="num_heads"):
    nnx.eval_shape(lambda: model.VisionTransformer(img_size=8, patch_size=4, embed_dim=8,
                                                   depth=1, num_heads=3, rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match="perfect square"):
    model.VisionTransformerPredictor(num_patches=10, rngs=nnx.Rngs(0))


def test_partitioning_metadata():
  enc = nnx.eval_shape(lambda: model.VisionTransformer(img_size=8, patch_size=4, embed_dim=8,
                                                       depth=1, num_heads=2, rngs=nnx.Rngs(0)))
  allowed = {"batch", "embed", "mlp", "heads", "kv", "vocab", "expert", None}
  for path, var in nnx.state(enc, nnx.Param).flat_state():
    names = var.get_metadata().get("out_sharding")
    assert names is not None and len(names) == var.ndim, path
    assert set(names) <= allowed, path


@pytest.mark.parametrize("policy", ["full", "save_block_outputs"])
def test_remat_changes_no_number(build, policy):
  """remat_policy only changes what the backward pass stores: same outputs and gradients."""
  kw = dict(img_size=8, patch_size=4, embed_dim=8, depth=2, num_heads=2)
  enc = build(lambda: model.VisionTransformer(**kw, rngs=nnx.Rngs(0)), seed=5, std=0.2)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 3)), jnp.float32)

  def grads(m):
    return nnx.value_and_grad(lambda m: jnp.sum(jnp.square(m(x))))(m)

  plain_value, plain_grads = grads(enc)
  enc.remat_policy = policy
  value, g = grads(enc)
  np.testing.assert_allclose(value, plain_value, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               nnx.state(g, nnx.Param), nnx.state(plain_grads, nnx.Param))
  with pytest.raises(ValueError, match="remat_policy"):
    model.VisionTransformer(**kw, remat_policy="sometimes", rngs=nnx.Rngs(0))
