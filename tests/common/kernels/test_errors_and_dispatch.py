"""Bad input raises ValueError naming the argument; impl resolution; block-size choice."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from common.kernels import block_size
from common.kernels import dispatch
from common.kernels.block_sparse_attention import block_sparse_attention
from common.kernels.row_sparse_attention import row_sparse_attention

Q = jnp.zeros((1, 2, 32, 16), jnp.float32)
IDX = jnp.zeros((1, 2, 4, 2), jnp.int32)
ROWS = jnp.zeros((1, 2, 32, 3), jnp.int32)
SEG = jnp.zeros((1, 32), jnp.int32)
KV3 = jnp.zeros((1, 3, 32, 16), jnp.float32)  # 3 kv heads for 2 query heads


def _bsa(**over):
  kw = dict(q=Q, k=Q, v=Q, kv_block_indices=IDX, block_q=8, block_k=8)
  kw.update(over)
  return block_sparse_attention(kw.pop("q"), kw.pop("k"), kw.pop("v"),
                                kw.pop("kv_block_indices"), **kw)


def _rsa(**over):
  kw = dict(q=Q, k=Q, v=Q, key_indices=ROWS)
  kw.update(over)
  return row_sparse_attention(kw.pop("q"), kw.pop("k"), kw.pop("v"),
                              kw.pop("key_indices"), **kw)


@pytest.mark.parametrize("over,name", [
    (dict(block_q=12), "block_q=12"),
    (dict(block_k=0), "block_k=0"),
    (dict(kv_block_indices=IDX.astype(jnp.float32)), "kv_block_indices.dtype"),
    (dict(kv_block_indices=jnp.zeros((1, 2, 3, 2), jnp.int32)),
     "kv_block_indices.shape"),
    (dict(q=Q[0]), "q.shape"),
    (dict(k=Q.astype(jnp.int32)), "k.dtype"),
    (dict(v=Q[:, :, :16]), "v.shape"),
    (dict(q=Q.astype(jnp.bfloat16)), "dtypes"),
    (dict(causal=True, q_positions=jnp.zeros((1, 2, 32), jnp.float32)),
     "q_positions.dtype"),
    (dict(causal=True, kv_positions=jnp.zeros((1, 32), jnp.int32)),
     "kv_positions.shape"),
    (dict(scale="big"), "scale"),
    (dict(impl="cuda"), "impl='cuda'"),
    (dict(impl="pallas_gpu", block_q=8), "impl='pallas_gpu'"),
    (dict(q_segment_ids=SEG), "q_segment_ids was given without kv_segment_ids"),
    (dict(q_segment_ids=SEG, kv_segment_ids=SEG[:, :16]), "kv_segment_ids.shape"),
    (dict(q_segment_ids=SEG.astype(jnp.float32), kv_segment_ids=SEG),
     "q_segment_ids.dtype"),
    (dict(k=KV3, v=KV3), "k.shape.1.=3 kv heads must divide"),
    (dict(rel_keys=jnp.zeros((6, 16))), "R=6 must be odd"),
    (dict(rel_values=jnp.zeros((5, 8))), "rel_values.shape"),
    (dict(rel_keys=jnp.zeros((3, 5, 16))), "rel_keys.shape"),
    (dict(rel_keys=jnp.zeros((5, 16)), rel_values=jnp.zeros((7, 16))),
     "same number of rows"),
    (dict(rel_keys=jnp.zeros((5, 16), jnp.int32)), "rel_keys.dtype"),
    (dict(rel_keys=jnp.zeros((5, 16)), q_positions=jnp.zeros((1, 32), jnp.int32)),
     "q_positions.shape"),
    # Segment / position tiles need lane-sized key blocks on TPU.
    (dict(impl="pallas_tpu", q_segment_ids=SEG, kv_segment_ids=SEG),
     "impl='pallas_tpu'"),
])
def test_block_sparse_bad_input(over, name):
  with pytest.raises(ValueError, match=name.replace("(", r"\(")):
    _bsa(**over)


@pytest.mark.parametrize("over,name", [
    (dict(key_indices=ROWS.astype(jnp.uint8)), "key_indices.dtype"),
    (dict(key_indices=ROWS[:, :, :8]), "key_indices.shape"),
    (dict(key_valid=jnp.ones(ROWS.shape, jnp.int32)), "key_valid.dtype"),
    (dict(key_valid=jnp.ones((1, 2, 32, 2), bool)), "key_valid.shape"),
    (dict(impl="fast"), "impl='fast'"),
    (dict(impl="pallas_gpu", q=Q[..., :12], k=Q[..., :12], v=Q[..., :12]),
     "D=12"),
    (dict(kv_segment_ids=SEG), "kv_segment_ids was given without q_segment_ids"),
    (dict(q_segment_ids=SEG, kv_segment_ids=SEG[None]), "kv_segment_ids.shape"),
    (dict(k=KV3, v=KV3), "kv heads must divide"),
])
def test_row_sparse_bad_input(over, name):
  with pytest.raises(ValueError, match=name):
    _rsa(**over)


def test_auto_is_xla_on_cpu_and_aliases():
  assert jax.default_backend() == "cpu"
  assert dispatch.resolve_impl("auto") == "xla"
  assert dispatch.resolve_impl("interpret") == "interpret_gpu"
  assert dispatch.resolve_impl("interpret_tpu") == "interpret_tpu"


def test_auto_on_gpu_keeps_shaw_tables_and_cut_tiles_on_xla(monkeypatch):
  """'auto' on a GPU: the Triton body, except with Shaw tables or with tiles cut below 64 rows
  (f32 at D = 128): both slower there than XLA."""
  seen = []
  real = dispatch.resolve_impl

  def spy(impl, **fits):
    seen.append(fits["kernel_fits_gpu"])
    return real(impl, **fits)

  monkeypatch.setattr(dispatch, "resolve_impl", spy)
  q = jnp.zeros((1, 2, 64, 16), jnp.float32)
  idx = jnp.zeros((1, 2, 2, 1), jnp.int32)
  table = jnp.zeros((5, 16), jnp.float32)
  block_sparse_attention(q, q, q, idx, block_q=32, block_k=32)
  block_sparse_attention(q, q, q, idx, block_q=32, block_k=32, rel_keys=table)
  wide = jnp.zeros((1, 2, 128, 128), jnp.float32)
  idx = jnp.zeros((1, 2, 1, 1), jnp.int32)
  block_sparse_attention(wide, wide, wide, idx, block_q=128, block_k=128)
  block_sparse_attention(wide.astype(jnp.bfloat16), wide.astype(jnp.bfloat16),
                         wide.astype(jnp.bfloat16), idx, block_q=128, block_k=128)
  assert seen == [True, False, False, True]
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert real("auto", kernel_fits_gpu=True) == "pallas_gpu"
  assert real("auto", kernel_fits_gpu=False) == "xla"


def test_choose_block_size():
  assert block_size.choose_block_size(4096) == 128
  assert block_size.choose_block_size(96) == 96
  assert block_size.choose_block_size(3136, preferred=128) == 112
  assert block_size.choose_block_size(200, preferred=64) == 40
  with pytest.raises(ValueError, match="length=130"):
    block_size.choose_block_size(130, preferred=64)
  assert block_size.choose_num_chunks(64, 10, 100) == 8
