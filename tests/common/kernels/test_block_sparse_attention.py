"""Block-sparse attention against its dense reference: output, lse and dq/dk/dv for every impl.

The Pallas bodies run on CPU in interpret mode: "interpret" is the GPU
(Triton) body under the HLO interpreter, "interpret_tpu" the TPU (Mosaic)
body with scalar prefetch under the TPU interpreter.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.kernels import block_sparse_gpu
from common.kernels.block_sparse_attention import block_sparse_attention
from tests.common.kernels import kernel_checks as kc

# Fixed shapes (one compilation each); hypothesis varies the data.
CONFIGS = {
    "plain_f32": dict(b=1, h=2, tq=32, tk=32, d=16, bq=8, bk=8, n_sel=4,
                      causal=False, permuted=False, dtype=jnp.float32),
    "causal_permuted_f32": dict(b=1, h=2, tq=32, tk=48, d=16, bq=8, bk=16,
                                n_sel=2, causal=True, permuted=True,
                                dtype=jnp.float32),
    "causal_bf16": dict(b=1, h=1, tq=32, tk=32, d=32, bq=16, bk=8, n_sel=2,
                        causal=True, permuted=False, dtype=jnp.bfloat16),
}
# The TPU interpreter simulates every DMA through host callbacks: fewer runs.
EXAMPLES = {"xla": 6, "interpret": 3, "interpret_tpu": 2}
CASES = [(c, i) for c in CONFIGS for i in EXAMPLES
         if not (c == "causal_bf16" and i == "interpret_tpu")]


STATIC = ("impl", "block_q", "block_k", "causal")


def _call(q, k, v, idx, q_pos, kv_pos, w_o, w_lse, *, impl, block_q, block_k, causal):
  """((loss, (o, lse)), (dq, dk, dv)) of one call."""
  attend = lambda q, k, v: block_sparse_attention(
      q, k, v, idx, block_q=block_q, block_k=block_k, q_positions=q_pos,
      kv_positions=kv_pos, causal=causal, return_lse=True, impl=impl)
  return kc.loss_and_grads(attend, q, k, v, w_o, w_lse)


_run = jax.jit(_call, static_argnames=STATIC)


def _inputs(cfg, rng, pattern, empty_row_p):
  c = cfg
  q, k, v = kc.qkv(rng, c["b"], c["h"], c["tq"], c["tk"], c["d"], c["dtype"])
  nq, nk = c["tq"] // c["bq"], c["tk"] // c["bk"]
  lead = (c["b"], c["h"], nq)
  if pattern == "full":  # every block (or n_sel of them) in random order
    idx = np.full(lead + (c["n_sel"],), -1, np.int32)
    m = min(nk, c["n_sel"])
    for pos in np.ndindex(*lead):
      idx[pos][:m] = rng.permutation(nk)[:m]
    idx = jnp.asarray(idx)
  elif pattern == "local":  # previous and own block (sliding window)
    own = np.arange(nq) * nk // nq
    cols = np.stack([own, own - 1] + [np.full(nq, -1)] * (c["n_sel"] - 2), -1)
    idx = jnp.asarray(np.broadcast_to(cols, lead + (c["n_sel"],)), jnp.int32)
  else:
    idx = kc.index_lists(rng, lead, nk, c["n_sel"], empty_row_p=empty_row_p)
  q_pos, kv_pos = kc.case_positions(rng, c)
  w_o, w_lse = kc.cotangent_weights(rng, c["b"], c["h"], c["tq"], c["d"])
  return (q, k, v, idx, q_pos, kv_pos, w_o, w_lse)


def _static(cfg):
  return dict(block_q=cfg["bq"], block_k=cfg["bk"], causal=cfg["causal"])


@pytest.mark.parametrize("config,impl", CASES)
def test_matches_reference(config, impl):
  cfg = CONFIGS[config]
  kc.assert_matches_reference(
      lambda args, impl: _run(*args, impl=impl, **_static(cfg)),
      lambda rng, **drawn: _inputs(cfg, rng, **drawn), impl,
      examples=EXAMPLES[impl], dtype=cfg["dtype"],
      pattern=["random", "random", "full", "local"], empty_row_p=[0.0, 0.3, 1.0])


def test_gpu_body_cuts_blocks_into_smaller_tiles(monkeypatch):
  """The Triton body runs on tiles of at most tile_rows rows (block_sparse_gpu: large f32
  blocks overflow a GPU's shared memory); with the cap at 8 rows here, the configs' 16-row
  blocks become 8-row tiles and their lists are rewritten, and the results stay the
  reference's."""
  assert block_sparse_gpu.tile_rows(128, 64, jnp.float32) == 64     # the routing layer's
  assert block_sparse_gpu.tile_rows(128, 128, jnp.float32) == 32
  assert block_sparse_gpu.tile_rows(64, 128, jnp.bfloat16) == 64     # the device check's
  assert block_sparse_gpu.tile_rows(16, 256, jnp.float32) == 16
  monkeypatch.setattr(block_sparse_gpu, "_MAX_TILE_ROWS", 8)
  cut = []
  real = block_sparse_gpu._in_tiles
  monkeypatch.setattr(block_sparse_gpu, "_in_tiles",
                      lambda *a: cut.append(real(*a)[1:]) or real(*a))
  # A fresh function, so that no trace cached under the real cap is reused.
  run = jax.jit(lambda *a, **kw: _call(*a, **kw), static_argnames=STATIC)
  for config in ("causal_permuted_f32", "causal_bf16"):   # block_k 16; block_q 16
    cfg = CONFIGS[config]
    kc.assert_matches_reference(
        lambda args, impl: run(*args, impl=impl, **_static(cfg)),
        lambda rng, **drawn: _inputs(cfg, rng, **drawn), "interpret",
        examples=2, dtype=cfg["dtype"], pattern=["random", "full", "local"],
        empty_row_p=[0.0, 0.3])
  assert cut and set(cut) == {(8, 8)}


@pytest.mark.parametrize("impl", ["xla", "interpret"])
def test_all_blocks_equals_dense_attention(impl):
  cfg = CONFIGS["plain_f32"]
  rng = np.random.default_rng(0)
  args = _inputs(cfg, rng, "full", 0.0)
  (_, (o, _)), _ = _run(*args, impl=impl, **_static(cfg))
  kc.assert_equals_dense(o, *args[:3])


def test_causal_all_blocks_equals_causal_softmax():
  rng = np.random.default_rng(1)
  q, k, v = kc.qkv(rng, 1, 2, 32, 32, 16, jnp.float32)
  idx = jnp.broadcast_to(jnp.arange(4, dtype=jnp.int32), (1, 2, 4, 4))
  o = jax.jit(functools.partial(block_sparse_attention, block_q=8, block_k=8,
                                causal=True, impl="xla"))(q, k, v, idx)
  s = jnp.einsum("bhqd,bhkd->bhqk", q, k) / 4.0
  s = jnp.where(jnp.tril(jnp.ones((32, 32), bool)), s, -jnp.inf)
  dense = jnp.einsum("bhqk,bhkd->bhqd", jax.nn.softmax(s, -1), v)
  kc.assert_close(o, dense, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("impl", ["xla", "interpret", "interpret_tpu"])
def test_query_without_admissible_key_gives_zeros(impl):
  """Query block 0 lists nothing; block 1 lists only keys in its future."""
  cfg = CONFIGS["causal_permuted_f32"]
  rng = np.random.default_rng(2)
  q, k, v, idx, _, _, w_o, w_lse = _inputs(cfg, rng, "random", 0.0)
  idx = idx.at[:, :, 0].set(-1).at[:, :, 1].set(jnp.array([2, -1]))
  arange = lambda t: jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (1, 2, t))
  args = (q, k, v, idx, arange(32), arange(48), w_o, w_lse)
  (_, (o, lse)), grads = _run(*args, impl=impl, **_static(cfg))
  kc.assert_empty_rows(o, lse, grads, 16)
  kc.assert_results_close(((0.0, (o, lse)), grads),
                          _run(*args, impl="reference", **_static(cfg)),
                          jnp.float32)


def test_lists_are_sets():
  """Duplicates, out-of-range values and slot order do not change the result."""
  cfg = CONFIGS["plain_f32"]
  rng = np.random.default_rng(3)
  args = list(_inputs(cfg, rng, "random", 0.0))
  clean = np.array([[[[1, 3, -1, -1]] * 4] * 2], np.int32)
  messy = np.array([[[[3, 1, 3, 7]] * 4] * 2], np.int32)
  args[3] = jnp.asarray(clean)
  want = _run(*args, impl="xla", **_static(cfg))
  args[3] = jnp.asarray(messy)
  got = _run(*args, impl="xla", **_static(cfg))
  kc.assert_results_close(got, want, jnp.float32)
