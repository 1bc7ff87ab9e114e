"""MoE-X under expert parallelism + FSDP: expert tensors land on the 'expert' mesh axis (the
default logical rules) and the sharded forward on 8 forced CPU devices equals one device's."""
import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from common.train import config_io
from common.train import sharding as sharding_lib
from projects.moex import task

RULES = (("batch", ("data", "fsdp")), ("embed", "fsdp"), ("mlp", None), ("heads", None),
         ("vocab", None), ("expert", "expert"))


@pytest.fixture(scope="module")
def mesh():
  if len(jax.devices()) < 8:
    pytest.skip("needs 8 devices (tests/conftest.py forces 8 CPU devices)")
  return Mesh(np.array(jax.devices()[:8]).reshape(2, 2, 2), ("data", "fsdp", "expert"))


@pytest.mark.parametrize("dispatch", ["dense", "capacity", "dropless"])
def test_expert_parallel_forward_equals_single_device(mesh, dispatch):
  cfg = config_io.load_config("projects/moex/configs/chess.py:tiny,moex,stdlib",
                              **{"model.dispatch": dispatch})
  model = task.get_task(cfg).build_model(nnx.Rngs(0))
  ids = jax.random.randint(jax.random.key(3), (8, 16), 2, 258)
  graphdef, state = nnx.split(model)

  @jax.jit
  def forward(state, ids):
    out = nnx.merge(graphdef, state)(ids)
    return out[0] if isinstance(out, tuple) else out

  with jax.default_matmul_precision("highest"):
    ref = np.asarray(forward(state, ids))
    rules = sharding_lib.rules_dict(RULES)
    shardings = sharding_lib.state_shardings(state, mesh, rules)
    sharded = jax.device_put(state, shardings)
    specs = {jax.tree_util.keystr(p): v.sharding.spec for p, v in
             jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(sharded))
             if "ffn" in jax.tree_util.keystr(p) and v.ndim == 3}
    # Expert weights [M, d, D] / [M, D, d]: experts on 'expert', the model dim on 'fsdp'.
    assert len(specs) == 2 * cfg.model.num_layers, specs
    assert all(s[0] == "expert" and "fsdp" in s for s in specs.values()), specs
    ids = jax.device_put(ids, NamedSharding(mesh, PartitionSpec(
        *sharding_lib.batch_spec(mesh, rules), None)))
    out = np.asarray(forward(sharded, ids))
  np.testing.assert_allclose(out, ref, atol=2e-5, rtol=2e-5)
