"""Unit tests of the STViT port: unfold/fold semantics, padding, stop-gradients, modes, remat."""
import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import common  # noqa: F401
from projects.svit import STViT, STViTConfig, stoken

ALLOWED_AXES = {"batch", "embed", "mlp", "heads", "kv", "vocab", "expert", None}
TINY = STViTConfig(embed_dim=(8, 16, 24, 32), depths=(1, 1, 1, 1), num_heads=(1, 2, 3, 4),
                   n_iter=(2, 1, 1, 1), stoken_size=(4, 2, 1, 1), projection=16,
                   layerscale=(False, True, False, True), num_classes=5)


def _unfold_reference(s):
  """The official Unfold: conv2d with eye(9) kernels, padding 1, as explicit loops (NHWC)."""
  b, hh, ww, c = s.shape
  out = np.zeros((b, hh, ww, 9, c), s.dtype)
  for i, j, ky, kx in itertools.product(range(hh), range(ww), range(3), range(3)):
    y, x = i + ky - 1, j + kx - 1
    if 0 <= y < hh and 0 <= x < ww:
      out[:, i, j, ky * 3 + kx] = s[:, y, x]
  return out


def test_unfold_matches_identity_conv_and_fold_is_its_adjoint():
  rng = np.random.default_rng(0)
  s = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
  n = rng.standard_normal((2, 3, 4, 9, 5)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(stoken.unfold(jnp.asarray(s))), _unfold_reference(s))
  lhs = np.sum(_unfold_reference(s).astype(np.float64) * n)
  rhs = np.sum(s.astype(np.float64) * np.asarray(stoken.fold(jnp.asarray(n)), np.float64))
  np.testing.assert_allclose(lhs, rhs, rtol=1e-5)


@pytest.fixture(scope="module")
def attn(build):
  return build(lambda: stoken.StokenAttention(8, (4, 4), n_iter=2, num_heads=2, qkv_bias=True,
                                              rngs=nnx.Rngs(0)))


def test_stoken_attention_pads_any_size(attn):
  x = jax.random.normal(jax.random.key(1), (1, 10, 7, 8))  # 10x7 -> 12x8 padded
  y = nnx.jit(lambda m, x: m(x))(attn, x)
  assert y.shape == x.shape and bool(jnp.all(jnp.isfinite(y)))


def test_association_has_no_gradient(attn, monkeypatch):
  """Gradients equal those of the same forward with the association inputs frozen.

  If `associate` let gradients through (no stop_gradient, as torch.no_grad does), the
  patched copy below, which freezes its inputs, would give different gradients.
  """
  x = jax.random.normal(jax.random.key(2), (1, 8, 8, 8))
  graphdef, state = nnx.split(attn)

  def loss(x):
    return jnp.sum(jnp.sin(nnx.merge(graphdef, state)(x)))

  grad = jax.jit(jax.grad(loss))(x)
  real = stoken.associate

  def frozen(pixels, stokens, **kw):
    return real(jax.lax.stop_gradient(pixels), jax.lax.stop_gradient(stokens), **kw)

  monkeypatch.setattr(stoken, "associate", frozen)
  grad_frozen = jax.jit(jax.grad(loss))(x)
  np.testing.assert_allclose(np.asarray(grad), np.asarray(grad_frozen), rtol=1e-5, atol=1e-6)
  assert float(jnp.max(jnp.abs(grad))) > 0


def test_any_input_size_and_taps(build):
  model = build(lambda: STViT(TINY, rngs=nnx.Rngs(0)))
  x = jax.random.normal(jax.random.key(3), (2, 37, 45, 3))

  logits, out = nnx.jit(lambda m, x: m(x, return_stages=True))(model, x)
  # The pyramid taps only need shapes: trace them without compiling.
  _, blocks = nnx.eval_shape(lambda m, x: m(x, return_stages=True, taps="blocks"), model, x)
  assert logits.shape == (2, 5) and bool(jnp.all(jnp.isfinite(logits)))
  # 37x45 -> stem 10x12 -> 5x6 -> 3x3 -> 2x2 (ceil halving, torch padding 1).
  assert [o.shape for o in out] == [(2, 5, 6, 16), (2, 3, 3, 24), (2, 2, 2, 32), (2, 2, 2, 32)]
  assert [b.shape for b in blocks] == [(2, 10, 12, 8), (2, 5, 6, 16), (2, 3, 3, 24),
                                       (2, 2, 2, 32)]
  with pytest.raises(ValueError, match="taps='x'"):
    model(x, taps="x")
  with pytest.raises(ValueError, match=r"x.shape=\(2, 3, 37, 45\)"):
    model(x.transpose(0, 3, 1, 2))


def test_train_mode_updates_batch_stats_and_needs_rngs(build):
  model = build(lambda: STViT(dataclasses.replace(TINY, drop_path_rate=0.2), rngs=nnx.Rngs(0)))
  # The call convention: no layer owns an RNG stream, so checkpoints hold none.
  assert not nnx.state(model, nnx.RngState)
  x = jax.random.normal(jax.random.key(4), (2, 16, 16, 3))
  with pytest.raises(ValueError, match="rngs=None"):
    nnx.eval_shape(lambda m, x: m(x, train=True), model, x)
  before = np.asarray(model.norm.mean[...])
  y = nnx.jit(lambda m, x, r: m(x, train=True, rngs=r))(model, x, nnx.Rngs(dropout=1))
  assert y.shape == (2, 5)
  assert not np.allclose(before, np.asarray(model.norm.mean[...]))


def test_partitioning_metadata_and_dtypes():
  model = nnx.eval_shape(lambda: STViT(dataclasses.replace(TINY, dtype="bfloat16"),
                                       rngs=nnx.Rngs(0)))
  for path, var in nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))):
    names = var.get_metadata().get("out_sharding")
    assert names is not None and len(names) == len(var.shape), path
    assert set(names) <= ALLOWED_AXES, path
    assert var.dtype == jnp.float32, path
  out = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((1, 32, 32, 3),
                                                                      jnp.float32))
  assert out.dtype == jnp.bfloat16 and out.shape == (1, 5)


def test_headless_returns_pooled_features():
  model = nnx.eval_shape(lambda: STViT(dataclasses.replace(TINY, num_classes=0),
                                       rngs=nnx.Rngs(0)))
  out = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((1, 32, 32, 3),
                                                                      jnp.float32))
  assert out.shape == (1, 16) and model.head is None


def test_remat_policy_rematerialises_blocks():
  """`remat_policy` reaches every block: the traced gradient holds checkpoint (remat) ops."""
  def jaxpr(policy):
    model = nnx.eval_shape(lambda: STViT(dataclasses.replace(TINY, remat_policy=policy),
                                         rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    loss = lambda s, x: jnp.sum(nnx.merge(graphdef, s)(x, train=True))
    return str(jax.make_jaxpr(jax.grad(loss))(state, x))

  full = jaxpr("full")
  assert "checkpoint" in full or "remat" in full
  plain = jaxpr("none")
  assert "checkpoint" not in plain and "remat" not in plain
