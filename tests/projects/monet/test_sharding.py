"""Monet's pod rules through common.train.sharding: expert tensors land on the expert axis, and an
expert-parallel + FSDP forward on 8 forced CPU devices equals the single-device forward."""
import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from common.train import sharding as sharding_lib
from projects.monet.sharding import POD_RULES
from tests.projects.monet import tiny


@pytest.fixture(scope="module")
def mesh():
  if len(jax.devices()) < 8:
    pytest.skip("needs 8 devices (tests/conftest.py forces 8 CPU devices)")
  return Mesh(np.array(jax.devices()[:8]).reshape(2, 2, 2), ("data", "fsdp", "expert"))


def _shardings(state, mesh):
  return sharding_lib.state_shardings(state, mesh, sharding_lib.rules_dict(POD_RULES))


def test_expert_tensors_are_sharded_on_the_expert_axis(mesh):
  from projects.monet import MonetForCausalLM  # pylint: disable=g-import-not-at-top
  abstract = nnx.eval_shape(lambda: MonetForCausalLM(tiny.config(), rngs=nnx.Rngs(0)))
  shardings = _shardings(nnx.state(abstract), mesh)
  layer = shardings["layers"][0]
  spec = lambda v: v.get_value().spec
  assert spec(layer["moe"]["u1"]) == PartitionSpec("fsdp", "expert", None)
  assert spec(layer["moe"]["v12"]) == PartitionSpec("expert", None, "fsdp")
  assert spec(layer["moe"]["b2"]) == PartitionSpec("expert", "fsdp")
  assert spec(layer["router"]["w1"]) == PartitionSpec("fsdp", None, "expert")
  assert all(s is None for s in spec(layer["router"]["norm1"]["mean"]))  # replicated
  assert spec(layer["attn"]["q"]) == PartitionSpec("fsdp", "expert", None)
  rules = sharding_lib.rules_dict(POD_RULES)
  assert sharding_lib.batch_spec(mesh, rules) == PartitionSpec(("data", "fsdp"))


def test_sharded_forward_equals_single_device(mesh):
  model = tiny.model(tiny.config(num_hidden_layers=2), seed=1)  # layer 1 reuses layer 0's router
  ids = jax.random.randint(jax.random.key(5), (4, 12), 0, 256)
  ref_logits, ref_probs = tiny.forward(model, ids)
  graphdef, state = nnx.split(model)
  shardings = _shardings(state, mesh)

  @jax.jit
  def fwd(state, ids):
    return nnx.merge(graphdef, state)(ids, output_router_probs=True)

  state = jax.device_put(state, shardings)
  rules = sharding_lib.rules_dict(POD_RULES)
  ids = jax.device_put(ids, NamedSharding(mesh, PartitionSpec(*sharding_lib.batch_spec(mesh, rules),
                                                              None)))
  assert state["layers"][0]["moe"]["u1"].get_value().sharding.spec == PartitionSpec(
      "fsdp", "expert", None)
  with jax.default_matmul_precision("highest"):
    out = fwd(state, ids)
  np.testing.assert_allclose(np.asarray(out.logits), ref_logits, atol=2e-5)
  for ours, ref in zip(out.router_probs, ref_probs):
    if ref is not None:
      np.testing.assert_allclose(np.asarray(ours[0]), np.asarray(ref[0]), atol=2e-5)
