"""Row-sparse attention against its dense reference: output, lse and dq/dk/dv for every impl.

"interpret" runs the GPU (Triton) body under the HLO interpreter;
"interpret_tpu" runs the TPU path (block-sparse TPU kernels over touched
blocks with in-tile row masks) under the TPU interpreter.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.kernels.row_sparse_attention import row_sparse_attention
from tests.common.kernels import kernel_checks as kc

# Tq, Tk deliberately not multiples of the 16-row interpret tiles (padding).
CONFIGS = {
    "ragged_f32": dict(b=1, h=2, tq=40, tk=36, d=16, kk=5, dtype=jnp.float32),
    "bf16": dict(b=1, h=1, tq=32, tk=32, d=32, kk=4, dtype=jnp.bfloat16),
}
EXAMPLES = {"xla": 6, "interpret": 3, "interpret_tpu": 1}
CASES = [(c, i) for c in CONFIGS for i in EXAMPLES
         if not (c == "bf16" and i == "interpret_tpu")]


@functools.partial(jax.jit, static_argnames=("impl",))
def _run(q, k, v, rows, valid, w_o, w_lse, *, impl):
  """((loss, (o, lse)), (dq, dk, dv)) of one call."""
  attend = lambda q, k, v: row_sparse_attention(
      q, k, v, rows, key_valid=valid, return_lse=True, impl=impl)
  return kc.loss_and_grads(attend, q, k, v, w_o, w_lse)


def _inputs(cfg, rng, empty_row_p, valid_p):
  c = cfg
  q, k, v = kc.qkv(rng, c["b"], c["h"], c["tq"], c["tk"], c["d"], c["dtype"])
  rows = kc.index_lists(rng, (c["b"], c["h"], c["tq"]), c["tk"], c["kk"],
                        empty_row_p=empty_row_p)
  valid = jnp.asarray(rng.random(rows.shape) < valid_p)
  w_o, w_lse = kc.cotangent_weights(rng, c["b"], c["h"], c["tq"], c["d"])
  return q, k, v, rows, valid, w_o, w_lse


@pytest.mark.parametrize("config,impl", CASES)
def test_matches_reference(config, impl):
  cfg = CONFIGS[config]
  kc.assert_matches_reference(
      lambda args, impl: _run(*args, impl=impl),
      lambda rng, **drawn: _inputs(cfg, rng, **drawn), impl,
      examples=EXAMPLES[impl], dtype=cfg["dtype"],
      empty_row_p=[0.0, 0.3, 1.0], valid_p=[1.0, 0.7])


@pytest.mark.parametrize("impl", ["xla", "interpret"])
def test_all_keys_equals_dense_attention(impl):
  rng = np.random.default_rng(0)
  q, k, v = kc.qkv(rng, 1, 2, 16, 8, 16, jnp.float32)
  rows = jnp.asarray(np.stack([rng.permutation(8) for _ in range(32)]),
                     jnp.int32).reshape(1, 2, 16, 8)
  o = jax.jit(functools.partial(row_sparse_attention, impl=impl))(q, k, v,
                                                                  rows)
  kc.assert_equals_dense(o, q, k, v)


@pytest.mark.parametrize("impl", ["xla", "interpret"])
def test_query_without_keys_gives_zeros(impl):
  cfg = CONFIGS["ragged_f32"]
  q, k, v, rows, valid, w_o, w_lse = _inputs(
      cfg, np.random.default_rng(1), 0.0, 1.0)
  rows = rows.at[:, :, :3].set(-1)  # no keys
  valid = valid.at[:, :, 3].set(False)  # keys listed but all invalid
  (_, (o, lse)), grads = _run(q, k, v, rows, valid, w_o, w_lse, impl=impl)
  kc.assert_empty_rows(o, lse, grads, 4)


def test_lists_are_sets():
  """Duplicates and out-of-range keys are ignored; order does not matter."""
  cfg = CONFIGS["ragged_f32"]
  q, k, v, _, valid, w_o, w_lse = _inputs(cfg, np.random.default_rng(2),
                                          0.0, 1.0)
  clean = jnp.asarray(np.broadcast_to([4, 9, -1, -1, -1], (1, 2, 40, 5)),
                      jnp.int32)
  messy = jnp.asarray(np.broadcast_to([9, 36, 4, 9, -7], (1, 2, 40, 5)),
                      jnp.int32)
  ones = jnp.ones_like(valid)
  kc.assert_results_close(_run(q, k, v, messy, ones, w_o, w_lse, impl="xla"),
                          _run(q, k, v, clean, ones, w_o, w_lse, impl="xla"),
                          jnp.float32)
