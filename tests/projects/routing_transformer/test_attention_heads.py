"""Routing and local heads against dense masked references (the kernel and the official windowed
paths)."""
import functools

import jax
import numpy as np
import pytest

from projects.routing_transformer import kmeans, local_attention, routing_attention
from tests.projects.routing_transformer import reference

B, H, N, D = 2, 2, 32, 8


def _normal(seed, shape):
  return np.random.RandomState(seed).randn(*shape).astype(np.float32)


@pytest.fixture(scope="module")
def routed_inputs():
  x = np.asarray(kmeans.layer_norm_no_params(_normal(0, (B, H, N, D))))
  v = _normal(1, (B, H, N, D))
  means = np.asarray(kmeans.init_means(jax.random.key(2), H, 4, D))
  return x, v, means


# Jitted: op-by-op dispatch of the kernel's scan costs more on a shared CPU than one compile.
@functools.partial(jax.jit, static_argnames=("window", "impl", "max_relative_position",
                                             "mask_self", "scale_logits"))
def _routed_jit(x, v, means, window, impl, rel_keys=None, rel_values=None,
                max_relative_position=0, mask_self=False, scale_logits=False):
  scores, _ = kmeans.assign(x, means)
  idx = routing_attention.select_windows(scores, window)
  return routing_attention.routed_attention(
      x, v, idx, causal=True, impl=impl, rel_keys=rel_keys, rel_values=rel_values,
      max_relative_position=max_relative_position, mask_self=mask_self,
      scale_logits=scale_logits)


def _routed(x, v, means, window, **kw):
  return np.asarray(_routed_jit(x, v, means, window, **kw))


_local = jax.jit(local_attention.local_attention,
                 static_argnames=("block", "flange", "impl", "max_relative_position"))


@pytest.mark.parametrize("impl", ["auto", "official"])
@pytest.mark.parametrize("window", [8, 12])  # 4 * 12 > N: overlapping clusters
def test_routing_heads_match_dense_cluster_mask(routed_inputs, impl, window):
  x, v, means = routed_inputs
  got = _routed(x, v, means, window, impl=impl)
  for b in range(B):
    for h in range(H):
      want = reference.routing_head(x[b, h], v[b, h], means[h], window)
      np.testing.assert_allclose(got[b, h], want, atol=2e-5, rtol=1e-4)


def test_routing_heads_relative_positions_use_rank_in_window(routed_inputs):
  x, v, means = routed_inputs
  max_rel = 3  # < window: clipping is exercised
  rel_k, rel_v = _normal(3, (2 * max_rel + 1, D)), _normal(4, (2 * max_rel + 1, D))
  got = _routed(x, v, means, 8, impl="official", rel_keys=rel_k, rel_values=rel_v,
                max_relative_position=max_rel)
  for b in range(B):
    for h in range(H):
      want = reference.routing_head(x[b, h], v[b, h], means[h], 8, max_rel, rel_k, rel_v)
      np.testing.assert_allclose(got[b, h], want, atol=2e-5, rtol=1e-4)


# lucidrains' numerics (config.model.routing_mask_self / routing_scale_logits), each alone and
# both; 'auto' runs the kernel, whose self mask is a shift of the query positions.
@pytest.mark.parametrize("impl", ["auto", "official"])
@pytest.mark.parametrize("mask_self,scale_logits", [(True, False), (False, True), (True, True)])
def test_routing_heads_self_mask_and_scale_match_reference(routed_inputs, impl, mask_self,
                                                           scale_logits):
  x, v, means = routed_inputs
  got = _routed(x, v, means, 12, impl=impl, mask_self=mask_self, scale_logits=scale_logits)
  scale = D ** -0.5 if scale_logits else 1.0
  for b in range(B):
    for h in range(H):
      want = reference.routing_head(x[b, h], v[b, h], means[h], 12, mask_self=mask_self,
                                    scale=scale)
      np.testing.assert_allclose(got[b, h], want, atol=2e-5, rtol=1e-4)
  if mask_self:  # the self mask changed something: not the official output
    assert not np.allclose(got, _routed(x, v, means, 12, impl=impl, scale_logits=scale_logits),
                           atol=1e-3)


def test_routing_self_mask_with_relative_positions_takes_the_windowed_path(routed_inputs):
  """The kernel cannot shift positions without shifting Shaw distances: 'auto' falls back to the
  windowed path, which matches the reference; an explicit kernel impl is refused."""
  x, v, means = routed_inputs
  max_rel = 3
  rel_k, rel_v = _normal(3, (2 * max_rel + 1, D)), _normal(4, (2 * max_rel + 1, D))
  kw = dict(rel_keys=rel_k, rel_values=rel_v, max_relative_position=max_rel, mask_self=True,
            scale_logits=True)
  got = _routed(x, v, means, 8, impl="auto", **kw)
  for b in range(B):
    for h in range(H):
      want = reference.routing_head(x[b, h], v[b, h], means[h], 8, max_rel, rel_k, rel_v,
                                    mask_self=True, scale=D ** -0.5)
      np.testing.assert_allclose(got[b, h], want, atol=2e-5, rtol=1e-4)
  with pytest.raises(ValueError, match="self-masked routing head with relative positions"):
    _routed(x, v, means, 8, impl="xla", **kw)


def test_scatter_normalisation():
  """Tokens in no cluster give 0; in one cluster x/1.01; in two the mean-ish sum/(2.01)."""
  o = np.ones((1, 1, 2, 2, 1), np.float32)
  idx = np.array([[[[0, 1], [1, 3]]]], np.int32)
  got = np.asarray(routing_attention.scatter_windows(o, idx, 4))[0, 0, :, 0]
  np.testing.assert_allclose(got, [1 / 1.01, 2 / 2.01, 0.0, 1 / 1.01], rtol=1e-6)


@pytest.mark.parametrize("impl", ["auto", "official"])
@pytest.mark.parametrize("block,flange", [(8, 16), (4, 0)])
def test_local_heads_match_dense_local_causal_mask(impl, block, flange):
  q, k, v = (_normal(s, (B, H, N, D)) for s in (5, 6, 7))
  got = np.asarray(_local(q, k, v, block=block, flange=flange, impl=impl))
  for b in range(B):
    for h in range(H):
      want = reference.local_head(q[b, h], k[b, h], v[b, h], block, flange)
      np.testing.assert_allclose(got[b, h], want, atol=2e-5, rtol=1e-4)


def test_local_heads_relative_positions_use_token_distance():
  q, k, v = (_normal(s, (B, H, N, D)) for s in (8, 9, 10))
  max_rel = 5
  rel_k, rel_v = _normal(11, (2 * max_rel + 1, D)), _normal(12, (2 * max_rel + 1, D))
  got = np.asarray(_local(
      q, k, v, block=8, flange=8, impl="official", rel_keys=rel_k, rel_values=rel_v,
      max_relative_position=max_rel))
  for b in range(B):
    for h in range(H):
      want = reference.local_head(q[b, h], k[b, h], v[b, h], 8, 8, max_rel, rel_k, rel_v)
      np.testing.assert_allclose(got[b, h], want, atol=2e-5, rtol=1e-4)


def test_bad_local_shapes_name_the_field():
  q = np.zeros((1, 1, 30, 4), np.float32)
  with pytest.raises(ValueError, match="query_block.*30"):
    local_attention.local_attention(q, q, q, block=8, flange=8)
  q = np.zeros((1, 1, 32, 4), np.float32)
  with pytest.raises(ValueError, match="memory_flange=12"):
    local_attention.local_attention(q, q, q, block=8, flange=12)
  with pytest.raises(ValueError, match="attention dropout"):
    local_attention.local_attention(q, q, q, block=8, flange=8, impl="xla",
                                    dropout=lambda p: p)
  with pytest.raises(ValueError, match="max_relative_position=2 needs 5"):
    local_attention.local_attention(q, q, q, block=8, flange=8, impl="xla",
                                    rel_keys=np.zeros((3, 4)), rel_values=np.zeros((3, 4)),
                                    max_relative_position=2)
