"""routing_probe's dense attention maps reproduce the heads' outputs (what the notebook plots)."""
import numpy as np
import pytest
from flax import nnx

from common.train import config_io
from projects.routing_transformer import local_attention, routing_attention
from projects.routing_transformer import routing_probe, task as task_lib


@pytest.mark.parametrize("lucidrains", [False, True])
def test_attention_maps_times_values_equal_the_head_outputs(lucidrains):
  config = config_io.load_config(
      "projects/routing_transformer/configs/stdlib_demo.py:tiny,routing,sinusoidal")
  config.model.routing_mask_self = config.model.routing_scale_logits = lucidrains
  model = task_lib.get_task(config).build_model(nnx.Rngs(0))
  tokens = np.random.RandomState(0).randint(2, 258, (2, 64)).astype(np.int32)
  layer = 1
  attn = model.layers[layer].attention
  maps = routing_probe.attention_maps(model, tokens, layer, example=1)
  inputs = routing_probe.head_inputs(model, tokens, layer)
  q, k, v, x, idx = (inputs[name] for name in ("q", "k", "v", "x", "idx"))
  hr = attn.num_routing_heads
  routed = routing_attention.routed_attention(x, v[:, :hr], idx, impl="official",
                                              mask_self=lucidrains, scale_logits=lucidrains)
  local = local_attention.local_attention(q[:, hr:], k[:, hr:], v[:, hr:],
                                          block=attn.query_block, flange=attn.memory_flange,
                                          impl="official")
  want = np.concatenate([np.asarray(routed[1]), np.asarray(local[1])], axis=0)
  got = np.einsum("hij,hjd->hid", maps, np.asarray(v[1]))
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
  assert np.allclose(maps[hr:].sum(-1), 1.0, atol=1e-5)        # local rows are distributions
  assert np.all(np.triu(maps, 1) == 0)                          # causal for every head


def test_shared_windows_counts_pairs_that_meet_in_one_window():
  # 1 row, 2 routing heads, 2 windows of 2 positions each; position 5 is in no window.
  idx = np.array([[[[0, 3], [1, 2]], [[2, 4], [0, 1]]]])
  stats = routing_probe.shared_windows(idx, [(0, 3, 0), (0, 4, 2), (0, 3, 2), (0, 5, 1)])
  # (3,0) head 0 window 0; (4,2) head 1 window 0; (3,2) never together; 5 in no window.
  assert stats == dict(shared=0.5, query_in=0.75, key_in=1.0)
