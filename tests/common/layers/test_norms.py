"""LayerNorm, RMSNorm and BatchNorm against numpy / nnx / HF / torch formulas, incl. bfloat16."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.layers import norms


def test_layer_norm_matches_numpy():
  x = np.random.RandomState(0).randn(2, 5, 8).astype(np.float32) * 3 + 1
  ln = norms.LayerNorm(8, epsilon=1e-5)
  ln.scale[...] = np.linspace(0.5, 2.0, 8, dtype=np.float32)
  ln.bias[...] = np.linspace(-1.0, 1.0, 8, dtype=np.float32)
  mean = x.mean(-1, keepdims=True)
  var = x.var(-1, keepdims=True)
  want = (x - mean) / np.sqrt(var + 1e-5) * np.linspace(0.5, 2.0, 8) + np.linspace(-1, 1, 8)
  np.testing.assert_allclose(np.asarray(ln(jnp.asarray(x))), want, rtol=1e-5, atol=1e-5)


def test_rms_norm_matches_numpy_and_has_no_bias():
  x = np.random.RandomState(1).randn(3, 8).astype(np.float32)
  rms = norms.RMSNorm(8)
  want = x / np.sqrt(np.mean(x ** 2, -1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(np.asarray(rms(jnp.asarray(x))), want, rtol=1e-5, atol=1e-6)
  assert set(nnx.state(rms, nnx.Param).keys()) == {"scale"}


def test_options_dtypes_and_axes():
  ln = norms.LayerNorm(4, use_bias=False, use_scale=False)
  assert not nnx.state(ln, nnx.Param)
  ln = norms.LayerNorm(4, dtype=jnp.bfloat16)
  y = ln(jnp.ones((2, 4), jnp.float32))
  assert y.dtype == jnp.bfloat16 and ln.scale.dtype == jnp.float32
  assert ln.scale.get_metadata()["out_sharding"] == ("embed",)


def test_layer_norm_equals_nnx_layer_norm_two_pass():
  x = np.random.RandomState(2).randn(2, 3, 8).astype(np.float32) * 5 + 100  # large mean
  ours = norms.LayerNorm(8, epsilon=1e-5)
  ref = nnx.LayerNorm(8, epsilon=1e-5, use_fast_variance=False, rngs=nnx.Rngs(0))
  scale = np.linspace(0.5, 2.0, 8, dtype=np.float32)
  ours.scale[...] = ref.scale[...] = scale
  ours.bias[...] = ref.bias[...] = -scale
  np.testing.assert_array_equal(np.asarray(ours(jnp.asarray(x))), np.asarray(ref(jnp.asarray(x))))


def test_rms_norm_hf_cast_order_in_bfloat16():
  x = jnp.asarray(np.random.RandomState(3).randn(2, 8), jnp.bfloat16)
  rms = norms.RMSNorm(8, cast_before_scale=True)
  rms.scale[...] = np.linspace(0.5, 2.0, 8, dtype=np.float32)
  xf = x.astype(jnp.float32)
  normed = (xf * jax.lax.rsqrt(jnp.mean(xf * xf, -1, keepdims=True) + 1e-6)).astype(jnp.bfloat16)
  want = rms.scale[...] * normed  # HF: weight * hidden.to(input_dtype), float32 result
  got = rms(x)
  assert got.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _bn_reference(x, axis, eps, momentum, old_mean, old_var):
  reduce = tuple(a for a in range(x.ndim) if a != axis)
  shape = [1] * x.ndim
  shape[axis] = x.shape[axis]
  mean = x.mean(reduce)
  var = x.var(reduce)  # biased, for normalising
  n = x.size // x.shape[axis]
  y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
  new_mean = (1 - momentum) * old_mean + momentum * mean
  new_var = (1 - momentum) * old_var + momentum * var * n / (n - 1)  # unbiased running var
  return y, new_mean, new_var


def test_batch_norm_train_eval_and_running_stats_match_torch_formulas():
  rs = np.random.RandomState(4)
  x = (rs.randn(3, 4, 5, 6) * 2 + 1).astype(np.float32)
  bn = norms.BatchNorm(6, momentum=0.1, epsilon=1e-5)
  scale = np.linspace(0.5, 2.0, 6, dtype=np.float32)
  bn.scale[...] = scale
  bn.bias[...] = -scale
  y = bn(jnp.asarray(x), train=True)
  want, new_mean, new_var = _bn_reference(x, 3, 1e-5, 0.1, np.zeros(6), np.ones(6))
  np.testing.assert_allclose(np.asarray(y), want * scale - scale, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(bn.mean[...]), new_mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(bn.var[...]), new_var, rtol=1e-5, atol=1e-6)
  assert isinstance(bn.mean, nnx.BatchStat) and bn.mean.dtype == jnp.float32
  # Eval uses the running statistics and leaves them alone.
  y = bn(jnp.asarray(x))
  want = (x - new_mean) / np.sqrt(new_var + 1e-5) * scale - scale
  np.testing.assert_allclose(np.asarray(y), want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(bn.var[...]), new_var, rtol=1e-5, atol=1e-6)


def test_batch_norm_feature_axis_without_affine_and_gradients():
  rs = np.random.RandomState(5)
  x = rs.randn(2, 3, 4, 5).astype(np.float32)  # statistics per axis 2 (monet's router heads)
  bn = norms.BatchNorm(4, axis=2, use_scale=False, use_bias=False, param_axes=(None,))
  assert not nnx.state(bn, nnx.Param)
  assert bn.mean.get_metadata()["out_sharding"] == (None,)
  y = bn(jnp.asarray(x), train=True)
  want, new_mean, new_var = _bn_reference(x, 2, 1e-5, 0.1, np.zeros(4), np.ones(4))
  np.testing.assert_allclose(np.asarray(y), want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(bn.var[...]), new_var, rtol=1e-5, atol=1e-6)

  # Gradients flow through the batch statistics (torch): sum(y) has zero input gradient.
  def loss(x):
    return jnp.sum(norms.BatchNorm(4, axis=2)(x, train=True))
  np.testing.assert_allclose(np.asarray(jax.grad(loss)(jnp.asarray(x))), 0.0, atol=1e-5)


def test_batch_norm_bfloat16_and_errors():
  bn = norms.BatchNorm(3, dtype=jnp.bfloat16)
  assert bn(jnp.ones((2, 3)), train=True).dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="3 features"):
    bn(jnp.ones((2, 4)))
