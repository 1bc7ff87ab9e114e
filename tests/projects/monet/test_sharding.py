"""Expert-parallel forward on 8 forced CPU devices equals the single-device forward."""
import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import Mesh, PartitionSpec

from projects.monet.sharding import batch_sharding, logical_to_mesh_spec, state_shardings


@pytest.fixture(scope="module")
def mesh():
  if len(jax.devices()) < 8:
    pytest.skip("needs 8 devices (tests/conftest.py forces 8 CPU devices)")
  return Mesh(np.array(jax.devices()[:8]).reshape(2, 4), ("data", "expert"))


def test_expert_tensors_are_sharded_on_the_expert_axis(mesh, tiny_config):
  from projects.monet import MonetForCausalLM  # pylint: disable=g-import-not-at-top
  abstract = nnx.eval_shape(lambda: MonetForCausalLM(tiny_config(), rngs=nnx.Rngs(0)))
  shardings = state_shardings(nnx.state(abstract), mesh)
  layer = shardings["layers"][0]
  assert layer["moe"]["u1"].get_value().spec == PartitionSpec(None, "expert", None)
  assert layer["moe"]["v12"].get_value().spec == PartitionSpec("expert", None, None)
  assert layer["moe"]["b2"].get_value().spec == PartitionSpec("expert", None)
  assert layer["router"]["w1"].get_value().spec == PartitionSpec(None, None, "expert")
  assert layer["router"]["mean1"].get_value().spec == PartitionSpec()
  assert layer["attn"]["q"].get_value().spec == PartitionSpec(None, None, None)
  assert logical_to_mesh_spec(PartitionSpec("batch", "expert"), mesh) == PartitionSpec("data", "expert")
  with pytest.raises(ValueError, match="'nonsense'"):
    logical_to_mesh_spec(PartitionSpec("nonsense"), mesh)


def test_sharded_forward_equals_single_device(mesh, tiny_config, tiny_model, jit_forward):
  model = tiny_model(tiny_config(num_hidden_layers=2), seed=1)  # layer 1 reuses layer 0's router
  ids = jax.random.randint(jax.random.key(5), (4, 12), 0, 256)
  ref_logits, ref_probs = jit_forward(model, ids)
  graphdef, state = nnx.split(model)
  shardings = state_shardings(state, mesh)

  @jax.jit
  def fwd(state, ids):
    return nnx.merge(graphdef, state)(ids, output_router_probs=True)

  state = jax.device_put(state, shardings)
  ids = jax.device_put(ids, batch_sharding(mesh))
  assert state["layers"][0]["moe"]["u1"].get_value().sharding.spec == PartitionSpec(None, "expert", None)
  with jax.default_matmul_precision("highest"):
    out = fwd(state, ids)
  np.testing.assert_allclose(np.asarray(out.logits), ref_logits, atol=2e-5)
  for ours, ref in zip(out.router_probs, ref_probs):
    if ref is not None:
      np.testing.assert_allclose(np.asarray(ours[0]), np.asarray(ref[0]), atol=2e-5)
