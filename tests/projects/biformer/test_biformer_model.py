"""BiFormer model: preset parameter counts, config validation, routed attention, training mode."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import common  # noqa: F401
from projects.biformer import BiFormer, BiFormerConfig, bra, config
from tests import golden



def _trainable(name):
  model = nnx.eval_shape(lambda: BiFormer(config.preset(name), rngs=nnx.Rngs(0)))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize("name,official", [("BiFormer-T", "biformer_tiny"),
                                           ("BiFormer-S", "biformer_small"),
                                           ("BiFormer-B", "biformer_base")])
def test_preset_param_counts_match_official(name, official):
  with open(golden.folder("param_counts.json")) as f:
    expected = json.load(f)[official]["trainable_params"]
  assert _trainable(name) == expected


def test_stl_param_count_matches_spec():
  # shared/specs/vision.md §2.1 [RUN] row: biformer_stl 28,372,552.
  assert _trainable("BiFormer-STL") == 28_372_552


def test_presets_accept_official_names_and_reject_unknown():
  assert config.preset("biformer_small") == config.PRESETS["BiFormer-S"]
  assert config.preset("BiFormer-S", num_classes=10).num_classes == 10
  with pytest.raises(ValueError, match="preset='BiFormer-X' is unknown"):
    config.preset("BiFormer-X")
  with pytest.raises(ValueError, match=r"unknown BiFormerConfig field\(s\) \['heads'\]"):
    config.preset("BiFormer-T", heads=3)


@pytest.mark.parametrize("kwargs,match", [
    (dict(depth=(1, 1, 1)), r"depth=\(1, 1, 1\)"),
    (dict(topks=(1, 4, 0, -2)), r"topks\[2\]=0"),
    (dict(topks=(1, 4, 50, -2)), r"topks\[2\]=50"),
    (dict(head_dim=48), r"qk_dims\[2\]=256.*head_dim=48"),
    (dict(embed_dim=(64, 128, 256, 500), qk_dims=(64, 128, 256, 512)), r"embed_dim\[3\]=500"),
    (dict(before_attn_dwconv=5), "before_attn_dwconv=5"),
    (dict(side_dwconv=4), "side_dwconv=4"),
    (dict(layout="swin"), "layout='swin'"),
    (dict(attention_impl="flash"), "attention_impl='flash'"),
    (dict(attention_impl="gather"), "attention_impl='gather'"),
    (dict(remat_policy="some"), "remat_policy"),
    (dict(dtype="float8"), "dtype"),
    (dict(drop_path_rate=1.0), "drop_path_rate=1.0"),
])
def test_config_errors_name_field_and_value(kwargs, match):
  with pytest.raises(ValueError, match=match):
    config.preset("BiFormer-T", **kwargs)


def _dense_block_reference(q, k, v, idx, block, scale):
  """Dense softmax with every key outside the selected blocks masked out (numpy, float64)."""
  b, h, t, _ = q.shape
  logits = np.einsum("bhid,bhjd->bhij", q * scale, k).astype(np.float64)
  allowed = np.zeros((b, h, t, t), bool)
  for bi in range(b):
    for hi in range(h):
      for qb in range(t // block):
        for kb in idx[bi, hi, qb]:
          allowed[bi, hi, qb * block:(qb + 1) * block, kb * block:(kb + 1) * block] = True
  logits = np.where(allowed, logits, -np.inf)
  p = np.exp(logits - logits.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  return np.einsum("bhij,bhjd->bhid", p, v)


def test_routed_attention_gather_matches_masked_dense():
  rng = np.random.default_rng(0)
  b, h, nblk, block, d, dv, nsel = 2, 3, 6, 4, 8, 5, 3
  q, k = (rng.standard_normal((b, h, nblk * block, d)).astype(np.float32) for _ in range(2))
  v = rng.standard_normal((b, h, nblk * block, dv)).astype(np.float32)
  idx = np.stack([rng.permutation(nblk)[:nsel] for _ in range(b * h * nblk)])
  idx = idx.reshape(b, h, nblk, nsel).astype(np.int32)
  with jax.default_matmul_precision("highest"):
    out = bra.routed_attention(q, k, v, idx, block_q=block, block_k=block, scale=0.3)
  ref = _dense_block_reference(q, k, v, idx, block, 0.3)
  np.testing.assert_allclose(np.asarray(out), ref, atol=2e-6)
  with pytest.raises(ValueError, match="impl='flash'"):
    bra.routed_attention(q, k, v, idx, block_q=block, block_k=block, scale=0.3, impl="flash")


def test_regions_round_trip_and_order():
  x = jnp.arange(2 * 6 * 9 * 1, dtype=jnp.float32).reshape(2, 6, 9, 1)
  reg = bra.to_regions(x, 3)  # 3x3 regions of 2x3 pixels
  assert reg.shape == (2, 9, 6, 1)
  # Region r = j*3 + i holds rows 2j..2j+1, columns 3i..3i+2, row-major.
  np.testing.assert_array_equal(reg[0, 5, :, 0], np.asarray(x[0, 2:4, 6:9, 0]).reshape(-1))
  np.testing.assert_array_equal(bra.from_regions(reg, 3, 6, 9), x)


def test_topk_routing_breaks_exact_ties_towards_lower_ids():
  q_win = jnp.ones((1, 4, 2))
  k_win = jnp.array([[[1.0, 0.0], [2.0, 0.0], [1.0, 0.0], [2.0, 0.0]]])
  np.testing.assert_array_equal(bra.topk_routing(q_win, k_win, 3, 1.0)[0, 0], [1, 3, 0])


def test_bra_rejects_indivisible_maps_without_auto_pad():
  # The shape check runs before any parameter is used, so an abstract module suffices.
  attn = nnx.eval_shape(lambda: bra.BiLevelRoutingAttention(
      16, num_heads=2, n_win=7, topk=2, rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match="divisible by n_win=7"):
    attn(jnp.zeros((1, 16, 14, 16)))


def _materialise(model, seed):
  """Fills an abstract (nnx.eval_shape) model with random values.

  Random initialisers cost seconds of XLA compilation per model on CPU; filling from numpy
  costs nothing and is all a behavioural test needs.
  """
  rng = np.random.default_rng(seed)
  state = nnx.state(model)
  for path, var in state.flat_state():
    sds = var.get_value()
    if path[-1] == "var":  # BN running variance must stay positive
      value = rng.uniform(0.5, 1.5, sds.shape)
    else:
      value = rng.normal(0.0, 0.2 if path[-1] == "kernel" else 0.05, sds.shape)
    var.set_value(jnp.asarray(value, sds.dtype))
  nnx.update(model, state)
  return model


# A small model for training-mode checks: maps 16/8/4/2 with 2x2 regions.
SMALL = dict(depth=(1, 1, 1, 1), embed_dim=(16, 32, 32, 64), qk_dims=(16, 32, 32, 64),
             head_dim=16, topks=(2, 2, 3, -2), n_win=2, num_classes=5, drop_path_rate=0.3)


def test_train_mode_drop_path_and_gradients():
  model = _materialise(nnx.eval_shape(
      lambda: BiFormer(BiFormerConfig(**SMALL), rngs=nnx.Rngs(0))), 0)
  # The call convention: no layer owns an RNG stream, so checkpoints hold none.
  assert not nnx.state(model, nnx.RngState)
  x = jnp.asarray(np.random.default_rng(1).standard_normal((4, 64, 64, 3)), jnp.float32)

  @nnx.jit
  def step(model, x, key):
    def loss_fn(model):  # the step's rngs, made inside the traced loss as the trainer does
      logits, feats = model(x, train=True, rngs=nnx.Rngs(dropout=key), return_features=True)
      return jnp.mean(logits**2), (logits, feats)
    (loss, aux), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    return loss, aux, grads

  loss1, (logits1, feats), grads = step(model, x, jax.random.key(1))
  _, (logits2, _), _ = step(model, x, jax.random.key(2))
  assert np.isfinite(float(loss1))
  assert not np.allclose(logits1, logits2), "drop path masks must follow the step's key"
  assert [f.shape for f in feats.stages] == [(4, 16, 16, 16), (4, 8, 8, 32), (4, 4, 4, 32),
                                             (4, 2, 2, 64)]
  assert {k: v.shape for k, v in feats.r_idx.items()} == {
      "0.0": (4, 4, 2), "1.0": (4, 4, 2), "2.0": (4, 4, 3)}
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  qkv_grad = grads["stages"][0][0]["attn"]["qkv"]["kernel"][...]
  assert float(jnp.abs(qkv_grad).sum()) > 0
  with pytest.raises(ValueError, match="rngs=None"):
    nnx.eval_shape(lambda m, x: m(x, train=True), model, x)

  forward = nnx.jit(lambda model, x: model(x))  # eval: running statistics, no drop path
  np.testing.assert_array_equal(forward(model, x), forward(model, x))


def test_remat_policy_rematerialises_blocks():
  """`remat_policy` reaches every block: the traced gradient holds checkpoint (remat) ops."""
  def jaxpr(policy):
    cfg = BiFormerConfig(**dict(SMALL, drop_path_rate=0.0, remat_policy=policy))
    model = nnx.eval_shape(lambda: BiFormer(cfg, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    x = jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32)
    loss = lambda s, x: jnp.sum(nnx.merge(graphdef, s)(x, train=True))
    return str(jax.make_jaxpr(jax.grad(loss))(state, x))

  assert "checkpoint" in jaxpr("full") or "remat" in jaxpr("full")
  plain = jaxpr("none")
  assert "checkpoint" not in plain and "remat" not in plain


def test_block_sparse_kernel_matches_gather_forward_and_grad():
  rng = np.random.default_rng(3)
  b, h, nblk, block, d, nsel = 2, 2, 9, 4, 16, 3
  q, k, v = (jnp.asarray(rng.standard_normal((b, h, nblk * block, d)), jnp.float32)
             for _ in range(3))
  idx = np.stack([rng.permutation(nblk)[:nsel] for _ in range(b * h * nblk)])
  idx = jnp.asarray(idx.reshape(b, h, nblk, nsel), jnp.int32)
  cot = jnp.asarray(rng.standard_normal(q.shape), jnp.float32)

  def run(impl):
    f = lambda q, k, v: bra.routed_attention(q, k, v, idx, block_q=block, block_k=block,
                                             scale=d**-0.5, impl=impl)
    out, vjp = jax.vjp(f, q, k, v)
    return (out,) + vjp(cot)

  with jax.default_matmul_precision("highest"):
    ours, kernel = run("official"), run("auto")
  for name, a, c in zip(("out", "dq", "dk", "dv"), ours, kernel):
    np.testing.assert_allclose(np.asarray(a), np.asarray(c), atol=2e-5, err_msg=name)


def test_kernel_impls_need_equal_qk_and_v_widths():
  with pytest.raises(ValueError, match="stage 0 has qk_dims=32, embed_dim=64"):
    config.preset("BiFormer-T", qk_dims=(32, 128, 256, 512), attention_impl="auto")
  cfg = config.preset("BiFormer-T", attention_impl="pallas_gpu", dtype="bfloat16")
  assert cfg.attention_impl == "pallas_gpu" and cfg.dtype == jnp.bfloat16
