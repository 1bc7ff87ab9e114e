"""The XLA paths never materialise a Tq x Tk array, forward or backward.

Check: compile forward+backward at Tq = Tk = 1024 (Tq * Tk = 2**20 elements)
and read every array shape in the *optimised* HLO, i.e. the buffers XLA will
actually allocate after fusion, plus the compiled temp-buffer size (below
one f32 Tq x Tk matrix; the dense reference needs several). Legitimate intermediates are the scores
[Tq, n_sel * block_k = 32] and the gathered rows [Tq, K = 16, D = 8] (2**17
elements); any Tq x Tk array is 2**20, above the 2**18 limit. A control run on
the dense reference proves the check sees such a matrix.
"""
from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np

from common.kernels.block_sparse_attention import block_sparse_attention
from common.kernels.row_sparse_attention import row_sparse_attention

T, D = 1024, 8
LIMIT = T * T // 4  # elements of the largest allowed array
TEMP_LIMIT = T * T * 4  # bytes: one f32 Tq x Tk matrix
_SHAPE = re.compile(r"\b(?:f32|bf16|f16|s32|pred|u32|s8|u8)\[([0-9,]*)\]")


def _largest_array(compiled) -> int:
  sizes = [int(np.prod([int(d) for d in dims.split(",") if d]))
           for dims in _SHAPE.findall(compiled.as_text())]
  return max(sizes)


def _compile_grad(attn, q, k, v, index):
  loss = lambda q, k, v: jnp.sum(attn(q, k, v, index))
  return jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(q, k, v).compile()


def _qkv():
  rng = np.random.default_rng(0)
  return [jnp.asarray(rng.standard_normal((1, 1, T, D)), jnp.float32)
          for _ in range(3)]


def test_block_sparse_xla_path_has_no_tq_by_tk_buffer():
  q, k, v = _qkv()
  rng = np.random.default_rng(1)
  idx = jnp.asarray(rng.integers(0, T // 16, (1, 1, T // 16, 2)), jnp.int32)
  attn = functools.partial(block_sparse_attention, block_q=16, block_k=16,
                           causal=True)
  compiled = _compile_grad(functools.partial(attn, impl="xla"), q, k, v, idx)
  assert _largest_array(compiled) <= LIMIT
  assert compiled.memory_analysis().temp_size_in_bytes < TEMP_LIMIT
  control = _compile_grad(functools.partial(attn, impl="reference"), q, k, v,
                          idx)
  assert _largest_array(control) >= T * T
  assert control.memory_analysis().temp_size_in_bytes >= T * T * 4


def test_row_sparse_xla_path_has_no_tq_by_tk_buffer():
  q, k, v = _qkv()
  rng = np.random.default_rng(2)
  rows = jnp.asarray(rng.integers(0, T, (1, 1, T, 16)), jnp.int32)
  compiled = _compile_grad(functools.partial(row_sparse_attention, impl="xla"),
                           q, k, v, rows)
  assert _largest_array(compiled) <= LIMIT
  assert compiled.memory_analysis().temp_size_in_bytes < TEMP_LIMIT
  control = _compile_grad(
      functools.partial(row_sparse_attention, impl="reference"), q, k, v, rows)
  assert _largest_array(control) >= T * T
  assert control.memory_analysis().temp_size_in_bytes >= T * T * 4


def test_block_sparse_xla_path_with_every_feature_has_no_tq_by_tk_buffer():
  """GQA (2 query heads on 1 kv head), segment ids and both Shaw tables (R = 65): the relative
  terms go through [Tq, R] per head, never a [Tq, Tk] bias."""
  rng = np.random.default_rng(3)
  k, v = _qkv()[1:]
  q = jnp.asarray(rng.standard_normal((1, 2, T, D)), jnp.float32)
  idx = jnp.asarray(rng.integers(0, T // 16, (1, 2, T // 16, 2)), jnp.int32)
  seg = jnp.asarray(np.arange(T)[None] // 100, jnp.int32)
  rel_k, rel_v = (jnp.asarray(rng.standard_normal((65, D)), jnp.float32)
                  for _ in range(2))

  def attn(q, k, v, idx):
    return block_sparse_attention(
        q, k, v, idx, block_q=16, block_k=16, causal=True, q_segment_ids=seg,
        kv_segment_ids=seg, rel_keys=rel_k, rel_values=rel_v, impl="xla")

  compiled = _compile_grad(attn, q, k, v, idx)
  assert _largest_array(compiled) <= LIMIT
  # Below one f32 Tq x Tk matrix per query head.
  assert compiled.memory_analysis().temp_size_in_bytes < 2 * TEMP_LIMIT
