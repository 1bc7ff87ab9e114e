"""Shared helpers of the sparse-attention kernel tests: random inputs, index lists, the test loss
and its gradients, comparisons. Tests import it as `kc`.

Cost rule for these tests: every distinct (impl, shapes, static flags) is a
fresh XLA compilation of a Pallas interpreter loop (seconds on 2 shared
cores), so shapes come from a few fixed configs and hypothesis varies only
the *data* (index sets, positions, values), which reuses the compiled
executables of the module-level jitted functions.
"""
from __future__ import annotations

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np

# bf16 inputs: the kernels round probabilities and score gradients to bf16
# before their matmuls (as flash attention does) while the reference stays in
# f32, so errors are O(2**-8) relative to the magnitudes involved. Measured
# worst cases over 10 seeds are ~1/4 of these tolerances.
TOLERANCES = {
    jnp.float32: dict(out=dict(rtol=2e-5, atol=2e-5),
                      grad=dict(rtol=1e-4, atol=1e-4)),
    jnp.bfloat16: dict(out=dict(rtol=2e-2, atol=2e-2),
                       grad=dict(rtol=4e-2, atol=4e-2)),
}


def qkv(rng, b, h, tq, tk, d, dtype, h_kv=None):
  """q [b, h, tq, d]; k, v [b, h_kv (default h), tk, d]."""
  h_kv = h if h_kv is None else h_kv
  q = rng.standard_normal((b, h, tq, d))
  k = rng.standard_normal((b, h_kv, tk, d))
  v = rng.standard_normal((b, h_kv, tk, d))
  return tuple(jnp.asarray(x, dtype) for x in (q, k, v))


def segment_ids(rng, b, t, kind):
  """int32 [b, t]: 'packed' = a few contiguous runs (packed sequences), 'random' = ids in {0, 1, 2}
  per position (many queries lose most keys), 'one' = a single segment."""
  if kind == "one":
    return jnp.zeros((b, t), jnp.int32)
  if kind == "random":
    return jnp.asarray(rng.integers(0, 3, (b, t)), jnp.int32)
  cuts = np.sort(rng.choice(np.arange(1, t), size=(b, 2), replace=True), axis=-1)
  return jnp.asarray((np.arange(t)[None, :, None] >= cuts[:, None, :]).sum(-1), jnp.int32)


def rel_table(rng, shape):
  """A Shaw table (f32): [R, D] shared or [H, R, D] per head."""
  return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def cotangent_weights(rng, b, h, tq, d):
  """Random output/lse weights so that the test loss touches every output entry."""
  return (jnp.asarray(rng.standard_normal((b, h, tq, d)), jnp.float32),
          jnp.asarray(rng.standard_normal((b, h, tq)), jnp.float32))


def index_lists(rng, shape, upper, width, *, empty_row_p=0.2):
  """Duplicate-free random lists in [0, upper), -1 padded at random slots.

  shape: leading shape of the lists; width: slots per list (<= upper).
  """
  out = np.full(tuple(shape) + (width,), -1, np.int32)
  for pos in np.ndindex(*shape):
    if rng.random() < empty_row_p:
      continue
    n = int(rng.integers(1, width + 1))
    slots = rng.choice(width, n, replace=False)
    out[pos + (slots,)] = rng.choice(upper, n, replace=False)
  return jnp.asarray(out)


def permuted_positions(rng, b, h, t, pool):
  """Per (b, h), t distinct positions drawn from range(pool) in random order."""
  pos = np.stack([np.stack([rng.permutation(pool)[:t] for _ in range(h)])
                  for _ in range(b)])
  return jnp.asarray(pos, jnp.int32)


def case_positions(rng, c):
  """(q_pos, kv_pos) for a case dict: permuted positions when c['permuted'], else (None, None)."""
  if not c["permuted"]:
    return None, None
  pool = max(c["tq"], c["tk"])
  return (permuted_positions(rng, c["b"], c["h"], c["tq"], pool),
          permuted_positions(rng, c["b"], c["h"], c["tk"], pool))


def assert_close(got, want, *, rtol, atol, what=""):
  got = np.asarray(jnp.asarray(got, jnp.float32))
  want = np.asarray(jnp.asarray(want, jnp.float32))
  assert np.all(np.isfinite(got) | np.isneginf(got)), f"{what}: non-finite"
  np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


GRAD_NAMES = ("dq", "dk", "dv", "d_rel_keys", "d_rel_values")


def assert_results_close(got, want, dtype):
  """Compares ((loss, (o, lse)), (dq, dk, dv[, d tables])) tuples from value_and_grad."""
  tol = TOLERANCES[dtype]
  (_, (o, lse)), grads = got
  (_, (o_ref, lse_ref)), grads_ref = want
  assert_close(o, o_ref, **tol["out"], what="o")
  assert_close(lse, lse_ref, **tol["out"], what="lse")
  assert len(grads) == len(grads_ref)
  for name, g, g_ref in zip(GRAD_NAMES, grads, grads_ref):
    assert_close(g, g_ref, **tol["grad"], what=name)


def weighted_loss(o, lse, w_o, w_lse):
  """A scalar that touches every output and every finite lse entry (empty rows: lse = -inf)."""
  return (jnp.sum(o.astype(jnp.float32) * w_o) +
          jnp.sum(jnp.where(jnp.isfinite(lse), lse, 0.0) * w_lse))


def loss_and_grads(attend, q, k, v, w_o, w_lse, *tables):
  """((loss, (o, lse)), (dq, dk, dv, *d tables)) of `attend(q, k, v, *tables) -> (o, lse)` under
  weighted_loss; `tables` are the relative tables that are not None (differentiated too)."""

  def loss(*args):
    o, lse = attend(*args)
    return weighted_loss(o, lse, w_o, w_lse), (o, lse)

  args = (q, k, v) + tables
  return jax.value_and_grad(loss, argnums=tuple(range(len(args))), has_aux=True)(*args)


def assert_equals_dense(o, q, k, v):
  """`o` is full softmax attention of q over every key ([B, H, T, D] layouts)."""
  dense = jax.nn.dot_product_attention(
      *(x.transpose(0, 2, 1, 3) for x in (q, k, v))).transpose(0, 2, 1, 3)
  assert_close(o, dense, rtol=2e-5, atol=2e-5)


def assert_empty_rows(o, lse, grads, n):
  """Queries [0, n) have no admissible key: output 0, lse -inf, dq 0, all gradients finite."""
  assert np.all(np.asarray(o[:, :, :n]) == 0.0)
  assert np.all(np.isneginf(np.asarray(lse[:, :, :n])))
  for g in grads:
    assert np.all(np.isfinite(np.asarray(g)))
  assert np.all(np.asarray(grads[0][:, :, :n]) == 0.0)


def assert_matches_reference(run, inputs, impl, *, examples, dtype, **choices):
  """For `examples` hypothesis draws of a seed and one value from each list in `choices`:
  run(args, impl) matches run(args, "reference") (outputs, lse, gradients at `dtype`'s
  tolerances), where args = inputs(np.random.default_rng(seed), **drawn)."""

  @hypothesis.settings(max_examples=examples, deadline=None, database=None)
  @hypothesis.given(seed=st.integers(0, 2**32 - 1),
                    **{name: st.sampled_from(values) for name, values in choices.items()})
  def check(seed, **drawn):
    args = inputs(np.random.default_rng(seed), **drawn)
    assert_results_close(run(args, impl), run(args, "reference"), dtype)

  check()
