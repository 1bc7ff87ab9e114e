"""LayerNorm and RMSNorm against numpy, including bfloat16 compute with float32 params."""
import jax.numpy as jnp
import numpy as np
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
