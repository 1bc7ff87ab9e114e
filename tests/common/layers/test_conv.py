"""Conv2d: torch padding/init, groups, and the shifted-sum paths (depthwise, and narrow dense
convs) vs conv_general_dilated in values AND gradients."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.layers import conv


def _reference(x, kernel, strides, padding, dilation, groups):
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=strides, padding=conv.normalize_padding(padding),
      rhs_dilation=dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=groups)


CASES = [  # (kernel, strides, padding, dilation)
    ((3, 3), (1, 1), 1, (1, 1)),
    ((3, 3), (2, 2), 1, (1, 1)),                 # torch stride 2: pads (1, 1), not SAME (0, 1)
    ((5, 5), (1, 1), 2, (1, 1)),                 # BiFormer LePE
    ((3, 2), (2, 1), ((2, 0), (1, 0)), (2, 1)),  # causal over height, dilated, asymmetric
    ((2, 2), (2, 2), 0, (1, 1)),
]


@pytest.mark.parametrize("kind", ["depthwise", "narrow"])
@pytest.mark.parametrize("kernel_hw,strides,padding,dilation", CASES)
def test_shifted_sums_match_conv_values_and_gradients(kernel_hw, strides, padding, dilation,
                                                      kind):
  rs = np.random.RandomState(0)
  c = 4
  x = jnp.asarray(rs.randn(2, 7, 6, c).astype(np.float32))
  if kind == "depthwise":
    k = jnp.asarray(rs.randn(*kernel_hw, 1, c).astype(np.float32))
    fn, groups = conv.depthwise_conv2d, c
  else:  # C_in 4 -> C_out 3: the backward's swap of C_in and C_out is not a no-op
    k = jnp.asarray(rs.randn(*kernel_hw, c, 3).astype(np.float32))
    fn, groups = conv.narrow_conv2d, 1
  ours = lambda x, k: fn(x, k, strides=strides, padding=padding, dilation=dilation)
  ref = lambda x, k: _reference(x, k, strides, padding, dilation, groups)
  y, y_ref = ours(x, k), ref(x, k)
  assert y.shape == y_ref.shape
  np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=1e-5, atol=1e-5)
  cot = jnp.asarray(rs.randn(*y.shape).astype(np.float32))
  g = jax.jit(jax.grad(lambda x, k: jnp.sum(ours(x, k) * cot), argnums=(0, 1)))(x, k)
  g_ref = jax.grad(lambda x, k: jnp.sum(ref(x, k) * cot), argnums=(0, 1))(x, k)
  for a, b in zip(g, g_ref):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-4)


def test_conv2d_layer_groups_and_paths_agree():
  x = jnp.asarray(np.random.RandomState(1).randn(2, 6, 6, 4).astype(np.float32))
  for groups, out in ((1, 6), (2, 6), (4, 4)):
    fast = conv.Conv2d(4, out, 3, stride=2, padding=1, groups=groups, rngs=nnx.Rngs(0))
    xla = conv.Conv2d(4, out, 3, stride=2, padding=1, groups=groups, impl="xla",
                      rngs=nnx.Rngs(0))
    assert fast.depthwise == (groups == 4)
    want = _reference(x, fast.kernel[...], (2, 2), 1, (1, 1), groups) + fast.bias[...]
    np.testing.assert_allclose(np.asarray(fast(x)), np.asarray(want), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(xla(x)), np.asarray(want), rtol=1e-5, atol=1e-5)
    assert fast(x).shape == (2, 3, 3, out)
  # impl='shifted': dense convs by shifted sums too (groups 1), the same values.
  shifted = conv.Conv2d(4, 6, 3, stride=2, padding=1, impl="shifted", rngs=nnx.Rngs(0))
  want = _reference(x, shifted.kernel[...], (2, 2), 1, (1, 1), 1) + shifted.bias[...]
  np.testing.assert_allclose(np.asarray(shifted(x)), np.asarray(want), rtol=1e-5, atol=1e-5)
  # The opt-in rule: shifted sums only for few channels (and only on CPU, where this suite runs).
  assert conv.few_channel_impl(8, 8) == "shifted" and conv.few_channel_impl(24, 24) == "auto"


def test_same_init_as_nnx_conv_key_order_and_leading_axes():
  ours = conv.Conv2d(3, 5, 3, padding=1, kernel_init=nnx.initializers.lecun_normal(),
                     bias_init=nnx.initializers.normal(1.0), rngs=nnx.Rngs(0))
  ref = nnx.Conv(3, 5, (3, 3), padding=((1, 1), (1, 1)), bias_init=nnx.initializers.normal(1.0),
                 rngs=nnx.Rngs(0))
  np.testing.assert_array_equal(np.asarray(ours.kernel[...]), np.asarray(ref.kernel[...]))
  np.testing.assert_array_equal(np.asarray(ours.bias[...]), np.asarray(ref.bias[...]))
  x = jnp.asarray(np.random.RandomState(2).randn(2, 3, 5, 4, 3).astype(np.float32))
  np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), rtol=1e-5, atol=1e-5)


def test_torch_default_init_bounds_and_metadata():
  layer = conv.Conv2d(8, 64, 3, groups=2, kernel_axes=(None, None, None, "embed"),
                      rngs=nnx.Rngs(0))
  bound = 1 / math.sqrt(4 * 3 * 3)
  for p in (layer.kernel[...], layer.bias[...]):
    assert 0.8 * bound < float(jnp.abs(p).max()) <= bound
  assert layer.kernel.shape == (3, 3, 4, 64)
  assert layer.kernel.get_metadata()["out_sharding"] == (None, None, None, "embed")
  assert layer.bias.get_metadata()["out_sharding"] == ("embed",)


def test_bfloat16_depthwise_close_to_float32():
  rs = np.random.RandomState(3)
  x = rs.randn(1, 5, 5, 8).astype(np.float32)
  layer = conv.Conv2d(8, 8, 3, padding=1, groups=8, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  y = layer(jnp.asarray(x))
  assert y.dtype == jnp.bfloat16
  want = _reference(jnp.asarray(x), layer.kernel[...], (1, 1), 1, (1, 1), 8) + layer.bias[...]
  np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(want), rtol=3e-2, atol=3e-2)


def test_bad_arguments_name_the_field():
  with pytest.raises(ValueError, match="groups=3"):
    conv.Conv2d(4, 4, 3, groups=3, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="padding='SAME'"):
    conv.Conv2d(4, 4, 3, padding="SAME", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="impl"):
    conv.Conv2d(4, 4, 3, impl="pallas", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="impl='shifted' takes groups=1"):
    conv.Conv2d(4, 6, 3, groups=2, impl="shifted", rngs=nnx.Rngs(0))


def test_conv_bn_order_paths_and_batch_statistics():
  layer = conv.ConvBN(3, 4, 3, stride=2, padding=1, activation="gelu", rngs=nnx.Rngs(0))
  assert set(dict(nnx.to_flat_state(nnx.state(layer)))) == {
      ("conv", "kernel"), ("conv", "bias"), ("norm", "scale"), ("norm", "bias"),
      ("norm", "mean"), ("norm", "var")}
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
  # Eval: the norm's running statistics (0, 1) after an exact GELU of the conv.
  expected = jax.nn.gelu(layer.conv(x), approximate=False) / math.sqrt(1 + 1e-5)
  np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-6)
  layer(x, train=True)  # batch statistics update the running ones
  assert not np.allclose(layer.norm.mean[...], 0.0)
  plain = conv.ConvBN(3, 4, 2, stride=2, rngs=nnx.Rngs(0))
  assert plain(x).shape == (2, 4, 4, 4)
  with pytest.raises(ValueError, match="activation='gleu'"):
    conv.ConvBN(3, 4, 3, activation="gleu", rngs=nnx.Rngs(0))


def test_depthwise_bfloat16_gradients_follow_float32():
  """The written-out backward accumulates in float32 and returns the inputs' dtypes."""
  rs = np.random.RandomState(3)
  x = jnp.asarray(rs.randn(2, 8, 8, 6).astype(np.float32))
  k = jnp.asarray(rs.randn(3, 3, 1, 6).astype(np.float32))
  loss = lambda x, k: jnp.sum(jnp.sin(conv.depthwise_conv2d(x, k, strides=(2, 2), padding=1)
                                      .astype(jnp.float32)))
  g32 = jax.grad(loss, argnums=(0, 1))(x, k)
  g16 = jax.grad(loss, argnums=(0, 1))(x.astype(jnp.bfloat16), k.astype(jnp.bfloat16))
  for a, b in zip(g16, g32):
    assert a.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b), rtol=0.05, atol=0.1)
