"""Segment ids, GQA/MQA and Shaw relative tables against the dense references, every impl.

Output, lse and the gradients of q, k, v and the relative tables, over random block patterns.
"interpret" is the GPU (Triton) body under the HLO interpreter, "interpret_tpu" the TPU (Mosaic)
body under the TPU interpreter. To stay cheap (kernel_checks' cost rule), the Pallas bodies see
one case with every feature at once per dtype (bf16: the GPU body and the XLA path; the TPU
interpreter is the slowest, so it runs f32 once); each feature alone runs on the XLA path only.
The row-sparse TPU path is the block-sparse TPU body with row masks (GQA covered here, row masks
in test_row_sparse_attention.py) and segment ids are applied to the lists before any impl, so
row-sparse runs the XLA path and the GPU body (f32; their bf16 numerics do not depend on GQA and
are checked in test_row_sparse_attention.py).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.kernels import relative_positions, sparse_indices
from common.kernels.block_sparse_attention import block_sparse_attention
from common.kernels.row_sparse_attention import row_sparse_attention
from tests.common.kernels import kernel_checks as kc

_BASE = dict(b=1, h=4, h_kv=4, tq=32, tk=48, d=16, bq=16, bk=16, n_sel=2,
             causal=False, permuted=False, segments=False, rel_keys=None,
             rel_values=None)
# Table shapes name R = 2M + 1 rows; M = 3 < block, so distances clip.
CONFIGS = {
    # MQA (2 query heads on 1 kv head), segment ids, per-head rel_keys and a shared rel_values,
    # causal on permuted positions (few heads: the TPU interpreter's cost is per grid step).
    "all": dict(_BASE, h=2, h_kv=1, causal=True, permuted=True, segments=True,
                rel_keys=(2, 7, 16), rel_values=(7, 16)),
    "segments": dict(_BASE, b=2, h=2, h_kv=2),
    "gqa": dict(_BASE, h_kv=2, causal=True),  # 4 query heads on 2 kv heads
    "relative": dict(_BASE, h=2, h_kv=2, rel_keys=(9, 16)),
    # "all" on default positions: the XLA path's diagonal (skew) form of the Shaw terms.
    "diagonal": dict(_BASE, h=2, h_kv=1, causal=True, segments=True,
                     rel_keys=(2, 7, 16), rel_values=(7, 16)),
}
EXAMPLES = {"xla": 2, "interpret": 2, "interpret_tpu": 1}
BLOCK_CASES = ([("all", i, jnp.float32) for i in EXAMPLES] +
               [("all", i, jnp.bfloat16) for i in ("xla", "interpret")] +
               [(c, "xla", jnp.float32)
                for c in ("segments", "gqa", "relative", "diagonal")] +
               [("diagonal", "xla", jnp.bfloat16)])


@functools.partial(jax.jit,
                   static_argnames=("impl", "block_q", "block_k", "causal"))
def _run_block(q, k, v, idx, q_pos, kv_pos, q_seg, kv_seg, rel_k, rel_v, w_o,
               w_lse, *, impl, block_q, block_k, causal):
  """((loss, (o, lse)), (dq, dk, dv, *d tables)) of one call."""

  def attend(q, k, v, *tables):
    it = iter(tables)
    return block_sparse_attention(
        q, k, v, idx, block_q=block_q, block_k=block_k, q_positions=q_pos,
        kv_positions=kv_pos, causal=causal, q_segment_ids=q_seg,
        kv_segment_ids=kv_seg,
        rel_keys=None if rel_k is None else next(it),
        rel_values=None if rel_v is None else next(it),
        return_lse=True, impl=impl)

  tables = [t for t in (rel_k, rel_v) if t is not None]
  return kc.loss_and_grads(attend, q, k, v, w_o, w_lse, *tables)


def _block_inputs(cfg, dtype, rng, pattern, empty_row_p, segments):
  c = cfg
  q, k, v = kc.qkv(rng, c["b"], c["h"], c["tq"], c["tk"], c["d"], dtype,
                   h_kv=c["h_kv"])
  nq, nk = c["tq"] // c["bq"], c["tk"] // c["bk"]
  lead = (c["b"], c["h"], nq)
  if pattern == "full":
    idx = np.stack([rng.permutation(nk)[:c["n_sel"]]
                    for _ in range(int(np.prod(lead)))])
    idx = jnp.asarray(idx.reshape(lead + (c["n_sel"],)), jnp.int32)
  else:
    idx = kc.index_lists(rng, lead, nk, c["n_sel"], empty_row_p=empty_row_p)
  q_pos, kv_pos = kc.case_positions(rng, c)
  q_seg = kv_seg = None
  if c["segments"]:
    q_seg = kc.segment_ids(rng, c["b"], c["tq"], segments)
    kv_seg = kc.segment_ids(rng, c["b"], c["tk"], segments)
  rel_k = None if c["rel_keys"] is None else kc.rel_table(rng, c["rel_keys"])
  rel_v = None if c["rel_values"] is None else kc.rel_table(rng, c["rel_values"])
  w_o, w_lse = kc.cotangent_weights(rng, c["b"], c["h"], c["tq"], c["d"])
  return (q, k, v, idx, q_pos, kv_pos, q_seg, kv_seg, rel_k, rel_v, w_o, w_lse)


def _block_static(cfg):
  return dict(block_q=cfg["bq"], block_k=cfg["bk"], causal=cfg["causal"])


@pytest.mark.parametrize("config,impl,dtype", BLOCK_CASES)
def test_block_sparse_features_match_reference(config, impl, dtype):
  cfg = CONFIGS[config]
  kc.assert_matches_reference(
      lambda args, impl: _run_block(*args, impl=impl, **_block_static(cfg)),
      lambda rng, **drawn: _block_inputs(cfg, dtype, rng, **drawn), impl,
      examples=EXAMPLES[impl], dtype=dtype,
      pattern=["random", "full"], empty_row_p=[0.0, 0.3],
      segments=["packed", "random"])


@pytest.mark.parametrize("impl", ["xla", "interpret"])
def test_query_in_a_segment_without_keys_gives_zeros(impl):
  """Queries [0, 16) carry a segment id no key has: zeros, lse -inf, dq 0."""
  cfg = CONFIGS["all"]
  args = list(_block_inputs(cfg, jnp.float32, np.random.default_rng(4),
                            "full", 0.0, "packed"))
  args[6] = args[6].at[:, :16].set(99)
  (_, (o, lse)), grads = got = _run_block(*args, impl=impl,
                                          **_block_static(cfg))
  kc.assert_empty_rows(o, lse, grads, 16)
  kc.assert_results_close(
      got, _run_block(*args, impl="reference", **_block_static(cfg)),
      jnp.float32)


# Row-sparse: segment ids (applied to the lists by the op) and GQA, Tq and Tk
# not multiples of the 16-row interpret tiles.
ROW = dict(b=1, h=4, h_kv=2, tq=40, tk=36, d=16, kk=5)
ROW_IMPLS = ("xla", "interpret")  # bf16: test_row_sparse_attention.py


@functools.partial(jax.jit, static_argnames=("impl",))
def _run_row(q, k, v, rows, q_seg, kv_seg, w_o, w_lse, *, impl):
  attend = lambda q, k, v: row_sparse_attention(
      q, k, v, rows, q_segment_ids=q_seg, kv_segment_ids=kv_seg,
      return_lse=True, impl=impl)
  return kc.loss_and_grads(attend, q, k, v, w_o, w_lse)


def _row_inputs(dtype, rng, empty_row_p, segments):
  c = ROW
  q, k, v = kc.qkv(rng, c["b"], c["h"], c["tq"], c["tk"], c["d"], dtype,
                   h_kv=c["h_kv"])
  rows = kc.index_lists(rng, (c["b"], c["h"], c["tq"]), c["tk"], c["kk"],
                        empty_row_p=empty_row_p)
  w_o, w_lse = kc.cotangent_weights(rng, c["b"], c["h"], c["tq"], c["d"])
  return (q, k, v, rows, kc.segment_ids(rng, c["b"], c["tq"], segments),
          kc.segment_ids(rng, c["b"], c["tk"], segments), w_o, w_lse)


@pytest.mark.parametrize("impl", ROW_IMPLS)
def test_row_sparse_features_match_reference(impl):
  kc.assert_matches_reference(
      lambda args, impl: _run_row(*args, impl=impl),
      lambda rng, **drawn: _row_inputs(jnp.float32, rng, **drawn), impl,
      examples=EXAMPLES[impl], dtype=jnp.float32, empty_row_p=[0.0, 0.3],
      segments=["packed", "random"])


# The XLA path's local-window form of the Shaw terms (relative_positions.Window): numpy lists of
# the kv blocks i - S + 1 .. i, causal, default positions, blocks of one size. (slots, tables,
# heads / kv heads, segments, dtype): M = 3 < block (distances clip inside the window) with a
# per-head key table, M = 40 beyond the window, and S = 1 (the routing heads' own block).
WINDOW_CASES = [(2, ((2, 7, 16), (7, 16)), (2, 1), True, jnp.float32),
                (3, ((81, 16), None), (2, 2), False, jnp.float32),
                (1, ((7, 16), (2, 7, 16)), (2, 2), False, jnp.bfloat16)]


def _window_lists(slots, b, h, nq):
  blocks = np.arange(nq)[:, None] + np.arange(1 - slots, 1)[None, :]
  return np.broadcast_to(np.where(blocks >= 0, blocks, -1).astype(np.int32), (b, h, nq, slots))


@pytest.fixture
def windows(monkeypatch):
  """The arguments of every relative_positions.Window built while the test runs."""
  built = []
  of = relative_positions.Window.of
  monkeypatch.setattr(relative_positions.Window, "of",
                      classmethod(lambda cls, *a, **kw: built.append(a) or of(*a, **kw)))
  return built


@pytest.mark.parametrize("slots,tables,heads,segments,dtype", WINDOW_CASES)
def test_local_window_shaw_terms_match_reference(windows, slots, tables, heads, segments,
                                                 dtype):
  rng = np.random.default_rng(slots)
  b, t, d, block = 2, 64, 16, 16
  q, k, v = kc.qkv(rng, b, heads[0], t, t, d, dtype, h_kv=heads[1])
  idx = _window_lists(slots, b, heads[0], t // block)
  seg = kc.segment_ids(rng, b, t, "packed") if segments else None
  rel = [kc.rel_table(rng, s) for s in tables if s is not None]
  w_o, w_lse = kc.cotangent_weights(rng, b, heads[0], t, d)

  def run(lists, impl):
    def attend(q, k, v, *tabs):
      it = iter(tabs)
      return block_sparse_attention(
          q, k, v, lists, block_q=block, block_k=block, causal=True, q_segment_ids=seg,
          kv_segment_ids=seg, rel_keys=next(it) if tables[0] else None,
          rel_values=next(it) if tables[1] else None, return_lse=True, impl=impl)
    return jax.jit(lambda *a: kc.loss_and_grads(attend, *a))(q, k, v, w_o, w_lse, *rel)

  got = run(idx, "xla")  # numpy lists: the window form
  assert windows, "the numpy window lists did not take the Window form"
  kc.assert_results_close(got, run(jnp.asarray(idx), "reference"), dtype)
  if dtype == jnp.float32:  # and the traced lists' per-tile diagonals agree with it
    kc.assert_results_close(got, run(jnp.asarray(idx), "xla"), dtype)


def test_window_form_needs_a_causal_window_of_consecutive_blocks(windows):
  """Numpy lists that are no causal window (a gap, a block ahead, no own block) take the
  per-tile form and still match the reference."""
  rng = np.random.default_rng(0)
  q, k, v = kc.qkv(rng, 1, 2, 64, 64, 16, jnp.float32)
  table = kc.rel_table(rng, (7, 16))
  w_o, w_lse = kc.cotangent_weights(rng, 1, 2, 64, 16)
  nq = 4
  for offsets in ((-2, 0), (-1, 0, 1), (-2, -1)):
    blocks = np.arange(nq)[:, None] + np.asarray(offsets)[None, :]
    lists = np.broadcast_to(np.where((blocks >= 0) & (blocks < nq), blocks, -1)
                            .astype(np.int32), (1, 2, nq, len(offsets)))
    assert sparse_indices.static_band(lists, nq) == offsets

    def run(lists, impl):
      def attend(q, k, v, tab):
        return block_sparse_attention(q, k, v, lists, block_q=16, block_k=16, causal=True,
                                      rel_keys=tab, return_lse=True, impl=impl)
      return jax.jit(lambda *a: kc.loss_and_grads(attend, *a))(q, k, v, w_o, w_lse, table)

    kc.assert_results_close(run(lists, "xla"), run(jnp.asarray(lists), "reference"),
                            jnp.float32)
  assert not windows
  # Not a band: lists that differ between heads, and traced lists.
  mixed = np.stack([_window_lists(2, 1, 1, nq)[0, 0],
                    _window_lists(1, 1, 1, nq)[0, 0][:, [0, 0]]])
  assert sparse_indices.static_band(mixed[None], nq) is None
  assert sparse_indices.static_band(jnp.asarray(_window_lists(2, 1, 2, nq)), nq) is None
  dup = _window_lists(2, 1, 2, nq).copy()
  dup[..., 1:, 0] = dup[..., 1:, 1]  # duplicates count once: every row lists {i}
  assert sparse_indices.static_band(dup, nq) == (0,)
