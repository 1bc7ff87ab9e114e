"""MoE layers: the MoE-X sparsity score against numpy, the hidden code, dense vs capacity dispatch,
dropless (grouped-matmul) dispatch against dense (values, gradients, statistics; bf16; on an
expert-sharded 8-device mesh; on CPU through grouped_matmul's windowed path), the balance loss on a
hand-made case, exact up-cycling, and argument errors."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.layers import grouped_matmul, intermediates, moe
from common.train import mesh as mesh_lib
from common.train import sharding

D_MODEL, HIDDEN, EXPERTS, K = 8, 6, 4, 2


def _layer(k=K, **kw):
  kw.setdefault("kernel_init", nnx.initializers.normal(0.5))
  layer = moe.MoEX(D_MODEL, HIDDEN, EXPERTS, k, rngs=nnx.Rngs(0), **kw)
  if layer.b_enc is not None:  # nonzero biases, so the bias terms are exercised
    layer.b_enc[...] = 0.3 * jax.random.normal(jax.random.key(5), layer.b_enc.shape)
    layer.b_dec[...] = 0.1 * jnp.arange(D_MODEL, dtype=jnp.float32)
  return layer


@pytest.fixture(scope="module")
def x():
  return np.random.RandomState(0).randn(2, 16, D_MODEL).astype(np.float32)


def _sown(layer, name):
  return intermediates.layer_stats(nnx.pop(layer, nnx.Intermediate), name)["root"]


@pytest.mark.parametrize("router_bias", [False, True])
def test_sparsity_score_matches_numpy_equations(x, router_bias):
  layer = _layer(router_bias=router_bias)
  w = np.asarray(layer.w_enc[...], np.float64)        # [M, d, D]
  b = np.asarray(layer.b_enc[...], np.float64)
  got = np.asarray(layer.scores(jnp.asarray(x)))
  want = np.zeros(got.shape)
  for j in range(EXPERTS):
    rows = w[j].T                                       # the paper's W_enc^j: [D, d]
    mu_j, var_j = rows.mean(0), rows.var(0)             # column-wise over the D rows
    mu_h = x @ mu_j + (b[j].mean() if router_bias else 0.0)
    var_h = (x * x) @ var_j + (b[j].var() if router_bias else 0.0)
    want[..., j] = -np.vectorize(math.erf)(mu_h / (np.sqrt(2) * np.sqrt(var_h + 1e-6)))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  # omega = softmax over the top-k scores, zero elsewhere.
  gates = np.asarray(layer.route(jnp.asarray(x))[1])
  top = np.sort(want, -1)[..., -K:]
  np.testing.assert_allclose(np.sort(gates, -1)[..., -K:],
                             np.exp(top) / np.exp(top).sum(-1, keepdims=True), rtol=1e-4)
  assert ((gates > 0).sum(-1) == K).all()


def test_score_gradient_reaches_the_encoder(x):
  layer = _layer()
  graphdef, params = nnx.split(layer)
  grad = jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p).scores(jnp.asarray(x))))(params)
  assert np.abs(np.asarray(grad["w_enc"][...])).max() > 0


def test_hidden_code_is_zero_outside_routed_experts_and_l0_counts_positive_units(x):
  layer = _layer(sow_hidden=True)
  y = layer(jnp.asarray(x))
  state = nnx.pop(layer, nnx.Intermediate)
  code = np.asarray(intermediates.layer_stats(state, "mlp_hidden")["root"])
  code = code.reshape(*x.shape[:-1], EXPERTS, HIDDEN)
  gates = np.asarray(layer.route(jnp.asarray(x))[1])
  assert (code[gates == 0] == 0).all()
  assert (code >= 0).all() and (code[gates > 0] > 0).any()      # ReLU experts
  l0 = float(intermediates.layer_stats(state, "hidden_l0")["root"])
  assert l0 == pytest.approx((code > 0).sum(axis=(-2, -1)).mean())
  assert 0 < l0 < K * HIDDEN
  # The output is the wide MLP's decoder applied to the hidden code.
  w_dec = np.asarray(layer.w_dec[...]).reshape(EXPERTS * HIDDEN, D_MODEL)
  np.testing.assert_allclose(np.asarray(y), code.reshape(*x.shape[:-1], -1) @ w_dec
                             + np.asarray(layer.b_dec[...]), rtol=1e-4, atol=1e-5)
  # Every expert's own L0 (the truth the score predicts) bounds the routed ones.
  expert_l0 = np.asarray(intermediates.layer_stats(state, "expert_l0")["root"])
  np.testing.assert_array_equal(expert_l0[gates > 0], (code > 0).sum(-1)[gates > 0])


@pytest.mark.parametrize("router", ["sparsity", "learned"])
def test_capacity_dispatch_equals_dense_when_capacity_is_ample(x, router):
  dense = _layer(router=router, sow_hidden=True)
  cap = _layer(router=router, sow_hidden=True, dispatch="capacity",
               capacity_factor=EXPERTS / K)        # C = T: no expert can overflow
  mask = np.ones(x.shape[:2], np.float32)
  mask[1, -3:] = 0
  y_dense = dense(jnp.asarray(x), token_mask=jnp.asarray(mask))
  y_cap = cap(jnp.asarray(x), token_mask=jnp.asarray(mask))
  valid = mask > 0
  np.testing.assert_allclose(np.asarray(y_cap)[valid], np.asarray(y_dense)[valid],
                             rtol=1e-4, atol=1e-5)
  sd, sc = nnx.pop(dense, nnx.Intermediate), nnx.pop(cap, nnx.Intermediate)
  code = lambda s: np.asarray(intermediates.layer_stats(s, "mlp_hidden")["root"])[valid]
  np.testing.assert_allclose(code(sc), code(sd), rtol=1e-4, atol=1e-5)
  for name in ("hidden_l0", "balance_loss"):
    np.testing.assert_allclose(intermediates.layer_stats(sc, name)["root"],
                               intermediates.layer_stats(sd, name)["root"], rtol=1e-5)
  assert float(intermediates.layer_stats(sc, "dropped")["root"]) == 0.0


def test_capacity_dispatch_drops_overflow(x):
  # capacity_factor 0.25: C = ceil(0.25 * 16 * 2 / 4) = 2 slots per expert and row for 32
  # assignments: at most 2 * 4 = 8 of each row's 32 are kept.
  layer = _layer(dispatch="capacity", capacity_factor=0.25)
  layer(jnp.asarray(x))
  assert float(_sown(layer, "dropped")) >= 1 - 8 / 32


STATS = ("hidden_l0", "expert_load", "balance_loss", "mlp_hidden")
# (router, top_k, leading shape of x): together they cover both routers, k = 1 and 2, and
# x of shape [B, T, d] and [N, d]; every case has padding in its token_mask.
DROPLESS_CASES = [("sparsity", 1, (2, 16)), ("learned", 2, (32,))]


def _value_stats_grads(layer, x, mask):
  """(y, sown statistics, grads w.r.t. (params, x)) of sum(y * r) for a fixed random r, in one
  jitted call."""
  graphdef, params = nnx.split(layer)
  r = jax.random.normal(jax.random.key(7), x.shape)

  @jax.jit
  def loss(params, x, mask):
    model = nnx.merge(graphdef, params)
    y = model(x, token_mask=mask)
    sown = nnx.pop(model, nnx.Intermediate)
    return jnp.sum(y * r), (y, {n: intermediates.layer_stats(sown, n)["root"] for n in STATS})

  (_, (y, stats)), grads = jax.value_and_grad(loss, (0, 1), has_aux=True)(params, x, mask)
  return jax.device_get((y, stats, grads))


def _dropless_case(router, k, shape, x, **kw):
  """(layer kwargs, x reshaped to shape + [d], token mask with 3 padding tokens)."""
  kw = dict(router=router, k=k, sow_hidden=True, **kw)
  if router == "learned":  # logits of O(1), so the top-k choice is not a near tie
    kw["router_init"] = nnx.initializers.normal(0.5)
  mask = np.ones(shape, np.float32)
  mask.reshape(-1)[-3:] = 0                        # padding: computed, but excluded from stats
  return kw, jnp.asarray(x.reshape(*shape, D_MODEL)), jnp.asarray(mask)


@pytest.fixture(scope="module")
def dense_reference(x):
  """The dense-dispatch results of each DROPLESS_CASES entry, computed once per module."""
  return {case: _value_stats_grads(_layer(**kw), xs, mask)
          for case in DROPLESS_CASES for kw, xs, mask in [_dropless_case(*case, x)]}


def _assert_trees_close(got, want, **tol):
  jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, **tol), got, want)


def _spy_on_windowed(monkeypatch):
  """The calls of grouped_matmul's windowed path, the one impl='auto' takes on CPU."""
  calls = []
  real = grouped_matmul._windowed
  monkeypatch.setattr(grouped_matmul, "_windowed",
                      lambda *a, **k: calls.append(1) or real(*a, **k))
  return calls


@pytest.mark.parametrize("case", DROPLESS_CASES, ids=lambda c: f"{c[0]}-k{c[1]}-{len(c[2]) + 1}d")
def test_dropless_dispatch_equals_dense(x, dense_reference, case, monkeypatch):
  kw, xs, mask = _dropless_case(*case, x)
  windowed = _spy_on_windowed(monkeypatch)
  got = _value_stats_grads(_layer(dispatch="dropless", **kw), xs, mask)
  if jax.default_backend() == "cpu":   # elsewhere 'auto' takes ragged_dot (a GPU check runs this)
    assert len(windowed) == 2, "on CPU both expert products should take the windowed path"
  want = dense_reference[case]
  # Output, sown statistics and hidden code, and the gradients w.r.t. x and every parameter.
  _assert_trees_close(got, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(got[1]["hidden_l0"], want[1]["hidden_l0"])
  if case != DROPLESS_CASES[0]:
    return
  # bfloat16 compute (one case is enough): runs, and stays close to the float32 layer.
  kw.pop("sow_hidden")
  layer = _layer(dispatch="dropless", dtype=jnp.bfloat16, **kw)
  graphdef, params = nnx.split(layer)
  y16 = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))(params, xs)
  assert y16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(y16, np.float32), want[0], rtol=0.05, atol=0.05)


def test_dropless_dispatch_on_an_expert_sharded_mesh(x, dense_reference, monkeypatch):
  """8 CPU devices as data 2 x expert 4 (one expert per shard; k = 2, so a token's two experts
  sit on different devices), parameters placed by logical rules. Under `jax.set_mesh` the layer
  runs expert-parallel under shard_map and equals the single-device dense layer, gradients and
  statistics included. (Without a set mesh it is one GSPMD program: the MoE-X model's
  tests/projects/moex/test_sharding.py checks that path.)"""
  case = DROPLESS_CASES[1]
  kw, xs, mask = _dropless_case(*case, x)
  layer = _layer(dispatch="dropless", **kw)
  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 1, "model": 1, "expert": 4})
  rules = sharding.rules_dict([("batch", "data"), ("expert", "expert")])
  params = jax.device_put(nnx.state(layer), sharding.state_shardings(nnx.state(layer), mesh,
                                                                     rules))
  assert params["w_enc"].sharding.spec == jax.sharding.PartitionSpec("expert", None, None)
  layer = nnx.merge(nnx.graphdef(layer), params)
  xs = jax.device_put(xs, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
  calls = []
  real = moe._sharded_rows
  monkeypatch.setattr(moe, "_sharded_rows", lambda *a, **k: calls.append(1) or real(*a, **k))
  windowed = _spy_on_windowed(monkeypatch)
  with jax.set_mesh(mesh):
    _assert_trees_close(_value_stats_grads(layer, xs, mask), dense_reference[case],
                        rtol=1e-5, atol=1e-5)
  assert calls, "under jax.set_mesh the shard_map path was not taken"
  assert windowed, "the shard-local expert products did not take grouped_matmul's windowed path"


def test_switch_balance_loss_on_a_hand_made_case():
  # 4 tokens, 2 experts, k = 1. Probabilities: token 0-2 prefer expert 0, token 3 expert 1.
  probs = jnp.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
  idx = jnp.argmax(probs, -1)[:, None]
  gates = probs * jax.nn.one_hot(idx[:, 0], 2)
  loss, load = moe.balance_loss("switch", gates, idx, probs)
  # f = (3/4, 1/4); P = (0.65, 0.35); loss = 2 * (0.75 * 0.65 + 0.25 * 0.35) = 1.15.
  np.testing.assert_allclose(load, [0.75, 0.25])
  assert float(loss) == pytest.approx(1.15)
  # Padding excluded: with token 2 masked, f = (2/3, 1/3), P = (2/3, 1/3) -> 2 * 5/9.
  loss, _ = moe.balance_loss("switch", gates, idx, probs, jnp.array([1.0, 1.0, 0.0, 1.0]))
  assert float(loss) == pytest.approx(10 / 9)
  uniform = jnp.full((4, 2), 0.5)
  loss, _ = moe.balance_loss("switch", uniform, jnp.array([[0], [1], [0], [1]]), uniform)
  assert float(loss) == pytest.approx(1.0)   # the minimum: perfectly balanced
  cv2, _ = moe.balance_loss("cv2", gates, idx, probs)
  imp = np.array([0.9 + 0.8 + 0.6, 0.7])
  assert float(cv2) == pytest.approx(imp.var() / imp.mean() ** 2)


def test_learned_router_renormalisation_and_z_loss(x):
  plain = moe.SwitchMoE(D_MODEL, HIDDEN, EXPERTS, K, renormalize=False, z_loss=True,
                        router_init=nnx.initializers.normal(1.0), rngs=nnx.Rngs(1))
  _, gates, idx, probs = plain.route(jnp.asarray(x))
  np.testing.assert_allclose(np.take_along_axis(np.asarray(gates), np.asarray(idx), -1),
                             np.take_along_axis(np.asarray(probs), np.asarray(idx), -1), rtol=1e-6)
  assert (np.asarray(gates).sum(-1) < 1).all()
  plain(jnp.asarray(x))
  logits = x @ np.asarray(plain.w_router[...])
  lse = np.log(np.exp(logits).sum(-1))
  assert float(_sown(plain, "z_loss")) == pytest.approx((lse ** 2).mean(), rel=1e-4)
  assert plain.activation == "gelu"


@pytest.mark.parametrize("mode,dense_hidden", [("copy", HIDDEN), ("split", 2 * HIDDEN)])
def test_upcycled_experts_reproduce_the_dense_mlp(x, mode, dense_hidden):
  rs = np.random.RandomState(1)
  wi, bi = rs.randn(D_MODEL, dense_hidden), rs.randn(dense_hidden)
  wo, bo = rs.randn(dense_hidden, D_MODEL), rs.randn(D_MODEL)
  dense = np.maximum(x @ wi + bi, 0) @ wo + bo
  p = moe.upcycle(*(jnp.asarray(a, jnp.float32) for a in (wi, bi, wo, bo)),
                  num_experts=EXPERTS, expert_hidden=HIDDEN, mode=mode)
  layer = _layer(router="learned")
  for name, value in p.items():
    getattr(layer, name)[...] = value
  x_in = x
  if mode == "split":
    # Exact only when a token's k = G = 2 experts hold each slice once with equal weights: the
    # last input feature, set to 1, gives experts 0 and 1 (slices 0 and 1) equal top logits.
    router = np.zeros((D_MODEL, EXPERTS), np.float32)
    router[-1, :2] = 1.0
    layer.w_router[...] = jnp.asarray(router)
    x_in = x.copy()
    x_in[..., -1] = 1.0
    dense = np.maximum(x_in @ wi + bi, 0) @ wo + bo
  y = layer(jnp.asarray(x_in))
  np.testing.assert_allclose(np.asarray(y), dense, rtol=1e-4, atol=1e-4)
  noisy = moe.upcycle(*(jnp.asarray(a, jnp.float32) for a in (wi, bi, wo, bo)),
                      num_experts=EXPERTS, expert_hidden=HIDDEN, mode=mode, noise_std=0.1,
                      key=jax.random.key(0))
  diff = np.asarray(noisy["w_enc"] - p["w_enc"])
  assert 0 < np.abs(diff).max() and not np.allclose(diff[0], diff[1])


def test_parameters_carry_logical_axes_and_learned_router_exists_only_when_asked():
  layer = moe.SwitchMoE(D_MODEL, HIDDEN, EXPERTS, K, rngs=nnx.Rngs(0))
  axes = {n: getattr(layer, n).get_metadata()["out_sharding"]
          for n in ("w_enc", "w_dec", "b_enc", "b_dec", "w_router")}
  assert axes == {"w_enc": ("expert", "embed", "mlp"), "w_dec": ("expert", "mlp", "embed"),
                  "b_enc": ("expert", "mlp"), "b_dec": ("embed",), "w_router": ("embed", "expert")}
  assert _layer().w_router is None   # MoE-X's router has no parameters of its own
  # Each expert is drawn separately: no two experts share their initial weights.
  w = np.asarray(layer.w_enc[...])
  assert not np.allclose(w[0], w[1])


def test_argument_errors():
  with pytest.raises(ValueError, match="top_k=5 must be <= num_experts=4"):
    moe.MoEX(D_MODEL, HIDDEN, 4, 5, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="router='topk'"):
    moe.MoEX(D_MODEL, HIDDEN, 4, 2, router="topk", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="dispatch='sparse'"):
    moe.MoEX(D_MODEL, HIDDEN, 4, 2, dispatch="sparse", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="temperature=0"):
    moe.MoEX(D_MODEL, HIDDEN, 4, 2, temperature=0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="gated"):
    moe.MoEX(D_MODEL, HIDDEN, 4, 2, activation="geglu", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"needs x of shape \[batch, seq, d\]"):
    moe.MoEX(D_MODEL, HIDDEN, 4, 2, dispatch="capacity", rngs=nnx.Rngs(0))(jnp.ones((3, D_MODEL)))
  w = jnp.ones((D_MODEL, 12))
  with pytest.raises(ValueError, match="mode='copy' needs expert_hidden == dense hidden"):
    moe.upcycle(w, None, w.T, None, num_experts=4, expert_hidden=6, mode="copy")
  with pytest.raises(ValueError, match="must divide num_experts"):
    moe.upcycle(w, None, w.T, None, num_experts=3, expert_hidden=6)
  with pytest.raises(ValueError, match="needs a PRNG"):
    moe.upcycle(w, None, w.T, None, num_experts=4, expert_hidden=6, noise_std=0.1)
