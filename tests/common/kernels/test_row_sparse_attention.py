"""Row-sparse attention against its dense reference: output, lse and dq/dk/dv for every impl.

"interpret" runs the GPU (Triton) body under the HLO interpreter;
"interpret_tpu" runs the TPU path (block-sparse TPU kernels over touched
blocks with in-tile row masks) under the TPU interpreter.
"""
from __future__ import annotations

import functools

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.kernels.row_sparse_attention import row_sparse_attention

# Tq, Tk deliberately not multiples of the 16-row interpret tiles (padding).
CONFIGS = {
    "ragged_f32": dict(b=1, h=2, tq=40, tk=36, d=16, kk=5, dtype=jnp.float32),
    "bf16": dict(b=1, h=1, tq=32, tk=32, d=32, kk=4, dtype=jnp.bfloat16),
}
EXAMPLES = {"xla": 6, "interpret": 3, "interpret_tpu": 1}
CASES = [(c, i) for c in CONFIGS for i in EXAMPLES
         if not (c == "bf16" and i == "interpret_tpu")]


def _loss(o, lse, w_o, w_lse):
  return (jnp.sum(o.astype(jnp.float32) * w_o) +
          jnp.sum(jnp.where(jnp.isfinite(lse), lse, 0.0) * w_lse))


@functools.partial(jax.jit, static_argnames=("impl",))
def _run(q, k, v, rows, valid, w_o, w_lse, *, impl):
  """((loss, (o, lse)), (dq, dk, dv)) of one call."""

  def loss(q, k, v):
    o, lse = row_sparse_attention(q, k, v, rows, key_valid=valid,
                                  return_lse=True, impl=impl)
    return _loss(o, lse, w_o, w_lse), (o, lse)

  return jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(q, k, v)


def _inputs(kc, cfg, rng, empty_row_p, valid_p):
  c = cfg
  q, k, v = kc.qkv(rng, c["b"], c["h"], c["tq"], c["tk"], c["d"], c["dtype"])
  rows = kc.index_lists(rng, (c["b"], c["h"], c["tq"]), c["tk"], c["kk"],
                        empty_row_p=empty_row_p)
  valid = jnp.asarray(rng.random(rows.shape) < valid_p)
  w_o, w_lse = kc.cotangent_weights(rng, c["b"], c["h"], c["tq"], c["d"])
  return q, k, v, rows, valid, w_o, w_lse


@pytest.mark.parametrize("config,impl", CASES)
def test_matches_reference(kc, config, impl):
  cfg = CONFIGS[config]

  @hypothesis.settings(max_examples=EXAMPLES[impl], deadline=None,
                       database=None)
  @hypothesis.given(seed=st.integers(0, 2**32 - 1),
                    empty_row_p=st.sampled_from([0.0, 0.3, 1.0]),
                    valid_p=st.sampled_from([1.0, 0.7]))
  def check(seed, empty_row_p, valid_p):
    args = _inputs(kc, cfg, np.random.default_rng(seed), empty_row_p, valid_p)
    kc.assert_results_close(_run(*args, impl=impl),
                            _run(*args, impl="reference"), cfg["dtype"])

  check()


@pytest.mark.parametrize("impl", ["xla", "interpret"])
def test_all_keys_equals_dense_attention(kc, impl):
  rng = np.random.default_rng(0)
  q, k, v = kc.qkv(rng, 1, 2, 16, 8, 16, jnp.float32)
  rows = jnp.asarray(np.stack([rng.permutation(8) for _ in range(32)]),
                     jnp.int32).reshape(1, 2, 16, 8)
  o = jax.jit(functools.partial(row_sparse_attention, impl=impl))(q, k, v,
                                                                  rows)
  dense = jax.nn.dot_product_attention(
      *(x.transpose(0, 2, 1, 3) for x in (q, k, v))).transpose(0, 2, 1, 3)
  kc.assert_close(o, dense, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("impl", ["xla", "interpret"])
def test_query_without_keys_gives_zeros(kc, impl):
  cfg = CONFIGS["ragged_f32"]
  q, k, v, rows, valid, w_o, w_lse = _inputs(
      kc, cfg, np.random.default_rng(1), 0.0, 1.0)
  rows = rows.at[:, :, :3].set(-1)  # no keys
  valid = valid.at[:, :, 3].set(False)  # keys listed but all invalid
  (_, (o, lse)), grads = _run(q, k, v, rows, valid, w_o, w_lse, impl=impl)
  assert np.all(np.asarray(o[:, :, :4]) == 0.0)
  assert np.all(np.isneginf(np.asarray(lse[:, :, :4])))
  for g in grads:
    assert np.all(np.isfinite(np.asarray(g)))
  assert np.all(np.asarray(grads[0][:, :, :4]) == 0.0)


def test_lists_are_sets(kc):
  """Duplicates and out-of-range keys are ignored; order does not matter."""
  cfg = CONFIGS["ragged_f32"]
  q, k, v, _, valid, w_o, w_lse = _inputs(kc, cfg, np.random.default_rng(2),
                                          0.0, 1.0)
  clean = jnp.asarray(np.broadcast_to([4, 9, -1, -1, -1], (1, 2, 40, 5)),
                      jnp.int32)
  messy = jnp.asarray(np.broadcast_to([9, 36, 4, 9, -7], (1, 2, 40, 5)),
                      jnp.int32)
  ones = jnp.ones_like(valid)
  kc.assert_results_close(_run(q, k, v, messy, ones, w_o, w_lse, impl="xla"),
                          _run(q, k, v, clean, ones, w_o, w_lse, impl="xla"),
                          jnp.float32)
