"""The MLP block: numerics, top-k, and the 'act_nonzero' statistic it sows."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.layers import activations, intermediates, mlp


def _params(block):
  return {k: np.asarray(v) for k, v in
          [("wi", block.wi.kernel[...]), ("bi", block.wi.bias[...]),
           ("wo", block.wo.kernel[...]), ("bo", block.wo.bias[...])]}


@pytest.fixture(scope="module")
def x():
  return np.random.RandomState(0).randn(3, 5, 8).astype(np.float32)


def test_relu_mlp_output_and_nonzero_fraction_match_numpy(x):
  block = mlp.Mlp(8, 16, bias_init=nnx.initializers.normal(0.5), rngs=nnx.Rngs(0))
  p = _params(block)
  y = block(jnp.asarray(x))
  h = np.maximum(x @ p["wi"] + p["bi"], 0)
  np.testing.assert_allclose(np.asarray(y), h @ p["wo"] + p["bo"], rtol=1e-5, atol=1e-5)
  stats = intermediates.pop_layer_stats(block)
  want = (h != 0).mean(axis=(1, 2))  # per example, over tokens and hidden units
  np.testing.assert_allclose(np.asarray(stats["root"]), want, rtol=1e-6)
  assert stats["root"].shape == (3,)
  assert not nnx.pop(block, nnx.Intermediate)  # popped: the block is clean again


def test_top_k_and_token_mask(x):
  block = mlp.Mlp(8, 16, top_k=3, sow_activations=True, rngs=nnx.Rngs(1))
  p = _params(block)
  token_mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], np.float32)
  y = block(jnp.asarray(x), token_mask=jnp.asarray(token_mask))
  h = np.maximum(x @ p["wi"] + p["bi"], 0)
  kth = np.sort(h, axis=-1)[..., -3:-2]
  hk = np.where(h >= kth, h, 0)
  np.testing.assert_allclose(np.asarray(y), hk @ p["wo"] + p["bo"], rtol=1e-5, atol=1e-5)
  inter = nnx.pop(block, nnx.Intermediate)
  np.testing.assert_allclose(np.asarray(intermediates.layer_stats(inter, "activations")["root"]),
                             hk, rtol=1e-5, atol=1e-6)
  per_token = (hk != 0).mean(-1)
  want = [(per_token[i] * token_mask[i]).sum() / max(token_mask[i].sum(), 1) for i in range(3)]
  got = intermediates.layer_stats(inter)["root"]
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
  assert float(got[2]) == 0.0  # no valid token: 0, not NaN


@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_every_activation_builds_and_runs(name):
  block = mlp.Mlp(4, 8, activation=name, use_bias=False, rngs=nnx.Rngs(0))
  assert block(jnp.ones((2, 4))).shape == (2, 4)
  assert (block.wi_linear is not None) == activations.is_gated(name)


def test_gelu_is_exact_erf_in_value_and_gradient():
  """The erf form against float64 math, values and derivative Phi(x) + x phi(x)."""
  from scipy.special import erf
  x64 = np.linspace(-9, 9, 1801)
  x = jnp.asarray(x64, jnp.float32)
  gelu = activations.get_activation("gelu")
  assert gelu is activations.gelu is activations.get_activation("geglu")
  # 1 + erf cancels in the negative tail, so the error there is absolute (as in torch).
  np.testing.assert_allclose(gelu(x), 0.5 * x64 * (1 + erf(x64 / np.sqrt(2))), rtol=1e-6,
                             atol=1e-6)
  cdf, pdf = 0.5 * (1 + erf(x64 / np.sqrt(2))), np.exp(-0.5 * x64 ** 2) / np.sqrt(2 * np.pi)
  np.testing.assert_allclose(jax.vmap(jax.grad(gelu))(x), cdf + x64 * pdf, rtol=1e-5, atol=1e-6)
  assert gelu(jnp.ones(3, jnp.bfloat16)).dtype == jnp.bfloat16


def test_bad_values_name_the_field():
  with pytest.raises(ValueError, match="activation='tanhh'.*allowed"):
    mlp.Mlp(4, 8, activation="tanhh", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="top_k=9"):
    mlp.Mlp(4, 8, top_k=9, rngs=nnx.Rngs(0))


def test_partitioning_metadata_and_dtypes():
  block = mlp.Mlp(4, 8, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  specs = nnx.get_partition_spec(nnx.state(block, nnx.Param))
  assert tuple(specs["wi"]["kernel"].get_value()) == ("embed", "mlp")
  assert tuple(specs["wo"]["kernel"].get_value()) == ("mlp", "embed")
  assert tuple(specs["wi"]["bias"].get_value()) == ("mlp",)
  assert block.wi.kernel.dtype == jnp.float32
  assert block(jnp.ones((2, 4))).dtype == jnp.bfloat16


def test_port_layout_names_output_dropout_and_call_convention(x):
  block = mlp.Mlp(8, 16, activation="gelu", layer_names=("fc1", "fc1_gate", "fc2"),
                  dropout_rate=0.5, output_dropout=True, sow_stats=False,
                  kernel_axes=("embed", "mlp"), rngs=nnx.Rngs(0))
  params = nnx.state(block, nnx.Param)
  assert set(params.keys()) == {"fc1", "fc2"}
  assert block.fc1_gate is None
  assert block.fc2.kernel.get_metadata()["out_sharding"] == ("mlp", "embed")
  xj = jnp.asarray(x)
  want = block.fc2(activations.gelu(block.fc1(xj)))
  np.testing.assert_allclose(np.asarray(block(xj)), np.asarray(want), rtol=1e-6)  # eval: no drop
  assert not nnx.pop(block, nnx.Intermediate)
  y1 = block(xj, train=True, rngs=nnx.Rngs(dropout=0))
  y2 = block(xj, train=True, rngs=nnx.Rngs(dropout=0))
  np.testing.assert_array_equal(np.asarray(y1), np.asarray(y2))
  assert float(jnp.mean(y1 == 0)) > 0.3  # the output itself is dropped (rate 0.5)
  with pytest.raises(ValueError, match="rngs=None"):
    block(xj, train=True)
  with pytest.raises(ValueError, match="layer_names"):
    mlp.Mlp(8, 16, layer_names=("a", "a", "b"), rngs=nnx.Rngs(0))
