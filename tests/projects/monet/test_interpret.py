"""Interpretability tools on a tiny random Monet: the masking selection rule, purged-expert
forwards against explicit per-expert sums, routing mass invariants, top contexts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from projects.monet import interpret
from projects.monet.interpret import routing
from tests.projects.monet import tiny


def test_select_experts_follows_the_two_times_rule():
  # 3 domains x 5 experts; target domain 0.
  masses = np.array([
      [0.4, 0.19, 0.0, 0.1, 0.3],
      [0.2, 0.10, 0.0, 0.0, 0.1],
      [0.1, 0.05, 0.0, 0.0, 0.2],
  ])
  chosen = interpret.select_experts(masses, 0)
  # 0.4 = 2 x 0.2 (>= counts); 0.19 < 2 x 0.10; zero mass never; 0.1 vs nothing elsewhere;
  # 0.3 < 2 x 0.2 (the NEXT domain is the best other, not the second row).
  np.testing.assert_array_equal(chosen, [True, False, False, True, False])
  np.testing.assert_array_equal(interpret.select_experts(masses, 2, ratio=1.0),
                                [False, False, False, False, False])
  np.testing.assert_array_equal(interpret.select_experts(masses, 1, ratio=0.5),
                                [True, True, False, False, False])
  with pytest.raises(ValueError, match="target=3"):
    interpret.select_experts(masses, 3)
  with pytest.raises(ValueError, match="masses.shape"):
    interpret.select_experts(masses[:1], 0)


@pytest.fixture(scope="module")
def models():
  cache = {}

  def get(decompose):
    if decompose not in cache:
      cache[decompose] = tiny.model(tiny.config(num_hidden_layers=2, moe_decompose=decompose),
                                    seed=3)
    return cache[decompose]

  return get


@pytest.fixture(scope="module")
def windows():
  rng = np.random.default_rng(0)
  return {"a": rng.integers(2, 120, (6, 9)).astype(np.int32),
          "b": rng.integers(120, 250, (6, 9)).astype(np.int32)}


def _moe_inputs(model, ids):
  """(u, g1, g2) of layer 0: the post-attention-normed input and its routing."""
  layer = model.layers[0]
  h = jnp.take(model.embed_tokens[...], ids, axis=0)
  positions = jnp.broadcast_to(jnp.arange(ids.shape[1]), ids.shape)
  h = h + layer.attn(layer.input_layernorm(h), positions)[0]
  u = layer.post_attention_layernorm(h)
  return (u, *layer.router(u))


def _explicit_expert(moe, u, i, j):
  """Expert (i, j)'s own output from its definition (paper eq. 6-15), shape (B, T, d)."""
  act = moe.act
  if hasattr(moe, "u"):  # horizontal: V_j act(U_i x + b1_i) + b2_j
    a = act(jnp.einsum("btd,dm->btm", u, moe.u[...][:, i]) + moe.u_bias[...][i])
    return jnp.einsum("btm,md->btd", a, moe.v[...][j]) + moe.b[...][j]
  a1 = act(jnp.einsum("btd,dm->btm", u, moe.u1[...][:, i]) + moe.u1_bias[...][i])
  a2 = act(jnp.einsum("btd,dm->btm", u, moe.u2[...][:, j]) + moe.u2_bias[...][j])
  top = a1 @ moe.v11[...][i] + a2 @ moe.v12[...][i] + moe.b1[...][i]
  bottom = a1 @ moe.v21[...][j] + a2 @ moe.v22[...][j] + moe.b2[...][j]
  return jnp.concatenate([top, bottom], axis=-1)


@pytest.mark.parametrize("decompose", ["vertical", "horizontal"])
def test_masked_experts_keep_all_equals_the_layer_and_purge_removes_one_expert(models, decompose, windows):
  model = models(decompose)
  ids = jnp.asarray(windows["a"][:2, :-1])
  e = model.config.moe_experts

  @nnx.jit
  def used_expert(model, ids):
    _, g1, g2 = _moe_inputs(model, ids)
    return jnp.divmod(jnp.argmax(jnp.einsum("bthi,bthj->ij", g1, g2)), e)

  i, j = (int(v) for v in used_expert(model, ids))

  @nnx.jit  # one compile instead of an eager dispatch per op
  def outputs(model, ids):
    moe = model.layers[0].moe
    u, g1, g2 = _moe_inputs(model, ids)
    full = moe(u, g1, g2)
    kept = interpret.MaskedExperts(moe, np.zeros((0, 2)))(u, g1, g2)
    purged = interpret.MaskedExperts(moe, [(i, j)])(u, g1, g2)
    weight = jnp.einsum("bth,bth->bt", g1[..., i], g2[..., j])[..., None]
    expected = full - weight * _explicit_expert(moe, u, i, j)
    # Every expert purged, in chunks of 5 (so the last chunk is padded): nothing is left.
    nothing = interpret.MaskedExperts(moe, np.argwhere(np.ones((e, e))), chunk=5)(u, g1, g2)
    return full, kept, purged, expected, nothing

  with jax.default_matmul_precision("highest"):
    full, kept, purged, expected, nothing = jax.device_get(outputs(model, ids))
  np.testing.assert_allclose(kept, full, atol=1e-5)
  np.testing.assert_allclose(purged, expected, atol=1e-5)
  assert np.abs(full - purged).max() > 1e-6  # the purged expert did contribute
  np.testing.assert_allclose(nothing, 0.0, atol=1e-6)


def test_routing_mass_sums_to_heads_and_top_contexts_are_the_best_tokens(models, windows):
  model = models("vertical")  # routing does not depend on the decomposition
  cfg = model.config
  mass = interpret.routing_mass(model, windows["a"], batch_size=4)
  assert mass.shape == (len(cfg.router_layers), cfg.moe_experts, cfg.moe_experts)
  # Each head's g1 and g2 rows sum to 1, so the expert scores of a token sum to H.
  np.testing.assert_allclose(mass.sum(axis=(1, 2)), cfg.moe_heads, rtol=1e-5)
  expert = routing.specific_experts([mass, interpret.routing_mass(model, windows["b"])], 0, n=1)[0]
  scores = interpret.expert_scores(model, windows["a"], expert, batch_size=4)
  assert scores.shape == (6, 8)
  decode = lambda ids: "".join(chr(int(t)) for t in ids)
  top = interpret.top_contexts(model, windows["a"], expert, decode, n=3, before=4, after=2)
  assert [c["score"] for c in top] == pytest.approx(sorted(scores.ravel())[::-1][:3])
  best = top[0]
  assert best["token"] == chr(windows["a"][best["window"], best["position"]])
  with pytest.raises(ValueError, match="expert="):
    interpret.expert_scores(model, windows["a"], (9, 0, 0))


def test_masking_experiment_rows(models, windows):
  model = models("horizontal")  # both masked forwards are checked against explicit sums above
  masses = {n: interpret.routing_mass(model, w) for n, w in windows.items()}
  base = interpret.domain_losses(model, windows)
  none = np.zeros((len(model.config.router_layers),) + (model.config.moe_experts,) * 2, bool)
  same = interpret.domain_losses(interpret.masked_model(model, none), windows)
  assert same == pytest.approx(base, abs=1e-4)
  rows = interpret.masking_experiment(model, masses, windows, random_controls=1)
  assert [r["target"] for r in rows] == ["a", "b"]
  for r in rows:
    assert r["purged"] == int(interpret.select_experts(
        np.stack(list(masses.values())), ["a", "b"].index(r["target"])).sum())
    assert np.isfinite([r["delta_target"], r["delta_others"], r["random_delta_target"]]).all()
    assert 0.0 <= r["purged_mass_target"] <= 1.0


@pytest.mark.parametrize("decompose", ["horizontal", "vertical"])
def test_masking_at_paper_scale_builds_nothing_expert_squared(decompose):
  """E = 512 per sub-router (262,144 experts, the 1.4B / 4.1B presets): purging 3 experts costs
  a few pair outputs, and the compiled program's scratch memory stays far below one (E, E)
  float per token."""
  from projects.monet.config import MonetConfig  # pylint: disable=g-import-not-at-top
  from projects.monet.experts import make_experts  # pylint: disable=g-import-not-at-top
  e, b, t = 512, 1, 4
  cfg = MonetConfig(vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=1,
                    moe_dim=4, moe_heads=2, moe_experts=e, moe_topk=8, moe_groups=1,
                    moe_decompose=decompose)
  moe = make_experts(cfg, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  u = jnp.asarray(rng.normal(size=(b, t, 16)), jnp.float32)
  g1, g2 = (jax.nn.softmax(jnp.asarray(rng.normal(size=(b, t, 2, e)) * 3), -1) for _ in range(2))
  pairs = [(3, 7), (500, 2), (11, 511)]
  masked = interpret.MaskedExperts(moe, pairs)
  run = nnx.jit(lambda m, *a: m(*a))
  with jax.default_matmul_precision("highest"):
    got = run(masked, u, g1, g2)
    want = moe(u, g1, g2)
    for i, j in pairs:
      want = want - jnp.einsum("bth,bth->bt", g1[..., i], g2[..., j])[..., None] * \
          _explicit_expert(moe, u, i, j)
  np.testing.assert_allclose(got, want, atol=1e-5)
  graphdef, state = nnx.split(masked)
  compiled = jax.jit(lambda s, *a: nnx.merge(graphdef, s)(*a)).lower(state, u, g1, g2).compile()
  assert compiled.memory_analysis().temp_size_in_bytes < b * t * e * e * 4 / 8
