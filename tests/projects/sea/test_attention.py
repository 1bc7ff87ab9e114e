"""SEAAttention: argument checks, official (dense mask) vs. row-sparse kernel equivalence,
causality, metadata."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from projects.sea.attention import SEAAttention
from projects.sea.performer import PerformerProjection

SHAPE = dict(num_heads=2, head_dim=16, k=4, predictor_length=32)
N, T = 2, 100  # T is not a multiple of the Performer chunk (64) nor of T_M


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  q = rng.standard_normal((N, 2, T, 16)).astype(np.float32) * 16 ** -0.5
  k, v = rng.standard_normal((2, N, 2, T, 16)).astype(np.float32)
  return q, k, v


@nnx.jit
def _forward(layer, q, k, v):
  out = layer(q, k, v, return_intermediates=True)
  return out.context, out.mask_compressed_keep, out.key_indices, out.key_valid, out.intermediates


@pytest.fixture(scope="module")
def runs(layer_factory):
  q, k, v = _inputs()
  with jax.default_matmul_precision("highest"):
    dense = _forward(layer_factory(attention_impl="official", **SHAPE), q, k, v)
    gather_layer = layer_factory(attention_impl="xla", **SHAPE)
    gather = _forward(gather_layer, q, k, v)
    # Causality: change every input from token 60 on; earlier outputs must not move.
    q2, k2, v2 = (x.copy() for x in (q, k, v))
    for x in (q2, k2, v2):
      x[:, :, 60:] = np.random.default_rng(1).standard_normal(x[:, :, 60:].shape)
    perturbed = _forward(gather_layer, q2, k2, v2)
  return dict(dense=dense, gather=gather, perturbed=perturbed)


def test_dense_and_row_sparse_paths_agree(runs):
  d_ctx, d_keep, _, _, d_int = runs["dense"]
  g_ctx, g_keep, idx, valid, g_int = runs["gather"]
  np.testing.assert_array_equal(d_keep, g_keep)
  np.testing.assert_allclose(g_ctx, d_ctx, atol=1e-5, rtol=1e-5)
  idx, valid = np.asarray(idx), np.asarray(valid)
  rebuilt = np.zeros(idx.shape[:-1] + (T + 1,), bool)
  np.put_along_axis(rebuilt, np.where(valid, idx, T), True, axis=-1)
  np.testing.assert_array_equal(rebuilt[..., :T], d_int["mask_keep"])
  # The sparse probabilities are the dense ones read at the kept keys.
  dense_at_keys = np.take_along_axis(np.asarray(d_int["partial_attention_probs"]), idx, -1)
  np.testing.assert_allclose(np.where(valid, dense_at_keys, 0),
                             g_int["partial_attention_probs_sparse"], atol=1e-6)
  kept = np.asarray(d_int["mask_keep"]).sum(-1)
  assert kept.max() <= idx.shape[-1] and (kept > 0).mean() > 0.5


def test_layer_is_causal(runs):
  before, after = runs["gather"][0][:, :60], runs["perturbed"][0][:, :60]
  np.testing.assert_allclose(after, before, atol=1e-6, rtol=0)
  assert not np.allclose(runs["gather"][0][:, 60:], runs["perturbed"][0][:, 60:])


def test_gates_and_average_branch(runs):
  ctx, _, _, _, inter = runs["dense"]
  _, _, _, v = (None, *_inputs())
  np.testing.assert_allclose(inter["average_context_layer"],
                             np.cumsum(v, axis=-2) / np.arange(1, T + 1)[:, None], atol=1e-5)
  mix = inter["gate_mix"]
  mixed = inter["partial_context_layer_1"] * mix + (1 - mix) * inter["average_context_layer"]
  np.testing.assert_allclose(ctx, np.transpose(mixed, (0, 2, 1, 3)).reshape(N, T, -1), atol=1e-6)
  # sigma(s0) scales every kept row: rows of the gated probabilities sum to sigma(s0) or 0.
  sums = np.asarray(inter["partial_attention_probs"]).sum(-1, keepdims=True)
  gate = np.asarray(inter["gate_attn_scale"])
  assert np.all(np.isclose(sums, gate, atol=1e-5) | (sums == 0))


@pytest.mark.parametrize("kwargs,match", [
    (dict(predictor_length=30), "predictor_length \\(T_M\\)=30"),
    (dict(k=0), "k=0"),
    (dict(head_dim=1), "head_dim=1"),
    (dict(attention_impl="flash"), "attention_impl='flash'"),
    # The old private vocabulary is gone (now 'official' and the kernel impls).
    (dict(attention_impl="dense"), "attention_impl='dense'"),
    (dict(attention_impl="gather"), "attention_impl='gather'"),
    (dict(attention_impl="kernel"), "attention_impl='kernel'"),
    (dict(k_oversample=2.0), "k_oversample=2.0"),
])
def test_constructor_rejects_bad_arguments(kwargs, match):
  args = dict(SHAPE, **kwargs)
  with pytest.raises(ValueError, match=match):
    nnx.eval_shape(lambda: SEAAttention(args.pop("num_heads"), args.pop("head_dim"), **args,
                                        rngs=nnx.Rngs(0)))


def test_call_rejects_bad_inputs(layer_factory):
  layer = layer_factory(max_pos=64, **SHAPE)
  x = jnp.zeros((1, 2, 8, 16))
  with pytest.raises(ValueError, match="q.shape=\\(1, 3, 8, 16\\)"):
    layer(jnp.zeros((1, 3, 8, 16)), jnp.zeros((1, 3, 8, 16)), jnp.zeros((1, 3, 8, 16)))
  with pytest.raises(ValueError, match="must be equal"):
    layer(x, x, jnp.zeros((1, 2, 9, 16)))
  with pytest.raises(ValueError, match="T=65"):
    y = jnp.zeros((1, 2, 65, 16))
    layer(y, y, y)


def test_parameters_carry_partitioning_metadata():
  layer = nnx.eval_shape(lambda: SEAAttention(**SHAPE, rngs=nnx.Rngs(0)))
  flat = nnx.to_flat_state(nnx.state(layer))
  assert flat
  for path, var in flat:
    names = var.get_metadata().get("out_sharding")
    assert names is not None and len(names) == len(var.shape), path
  trainable = {p for p, _ in nnx.to_flat_state(nnx.state(layer, nnx.Param))}
  assert ("performer", "projection") not in trainable
  assert isinstance(layer.performer.projection, PerformerProjection)


@pytest.mark.parametrize("in_width,out_width", [(258, 256), (10, 4), (7, 7), (6, 9)])
def test_area_resize_taps_average_each_window(in_width, out_width):
  """adaptive_avg_pool: output c is the mean of inputs floor(c*in/out) .. ceil((c+1)*in/out)-1."""
  from projects.sea.estimator import area_resize_taps
  x = np.random.default_rng(0).standard_normal((3, in_width))
  index, weight = area_resize_taps(in_width, out_width)
  got = sum(x[:, i] * w for i, w in zip(index, weight))
  want = [x[:, (c * in_width) // out_width:-(-((c + 1) * in_width) // out_width)].mean(-1)
          for c in range(out_width)]
  np.testing.assert_allclose(got, np.stack(want, -1), atol=1e-6)
  assert index.shape[0] == (2 if (in_width, out_width) == (258, 256) else index.shape[0])


@pytest.mark.parametrize("width,out_width", [(32, 128), (8, 32), (3, 12)])
def test_decoder_tail_width_map_is_upsample_pad_resize(width, out_width):
  """The folded width map equals nearest x4, one zero column on each side, then 'area' resize."""
  from projects.sea.estimator import area_resize_taps, upsample_pad_resize_matrix
  x = np.random.default_rng(1).standard_normal((5, width))
  wide = np.pad(np.repeat(x, 4, axis=-1), ((0, 0), (1, 1)))
  index, weight = area_resize_taps(wide.shape[-1], out_width)
  want = sum(wide[:, i] * w for i, w in zip(index, weight))
  m = upsample_pad_resize_matrix(width, out_width)
  np.testing.assert_allclose(x @ m.T, want, atol=1e-6)
  # A bias added before the resize passes unchanged: each output averages its window.
  np.testing.assert_allclose(sum(w for w in weight), np.ones(out_width), atol=1e-6)
