"""The compiled (non-interpret) Pallas bodies lower for CUDA and TPU, forward and backward.

No accelerator is needed: jax.export lowers for another platform, which runs
Pallas' Triton and Mosaic lowering rules (kernel body -> Triton IR / Mosaic
MLIR, block-shape and scalar-prefetch checks). It cannot run the device
compilers (Triton -> PTX, Mosaic layout passes in libtpu), so it proves the
kernels are expressible on both backends, not that they compile or are fast.

"block+features" lowers block-sparse attention with GQA, segment ids and both Shaw tables (the
GPU dq body's table-gradient atomics, the TPU body's prefetched bucket ranges); the row-sparse
case runs with one kv head (MQA).
"""
from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import pytest
from jax import export

from common.kernels.block_sparse_attention import block_sparse_attention
from common.kernels.row_sparse_attention import row_sparse_attention

B, H, T, D, BLOCK = 1, 2, 512, 64, 128
MAX_DISTANCE = 40


def _fwd_bwd(op, impl):
  def loss(q, k, v, index, *features):
    if op == "block":
      o = block_sparse_attention(q, k, v, index, block_q=BLOCK, block_k=BLOCK,
                                 causal=True, impl=impl)
    elif op == "block+features":
      seg, rel_k, rel_v = features
      o = block_sparse_attention(
          q, k, v, index, block_q=BLOCK, block_k=BLOCK, causal=True,
          q_segment_ids=seg, kv_segment_ids=seg, rel_keys=rel_k,
          rel_values=rel_v, impl=impl)
    else:
      o = row_sparse_attention(q, k, v, index, impl=impl)
    return jnp.sum(o.astype(jnp.float32))

  tables = (5, 6) if op == "block+features" else ()  # rel_keys, rel_values
  return jax.grad(loss, argnums=(0, 1, 2) + tables)


@pytest.mark.parametrize("platform,impl,target", [
    ("cuda", "pallas_gpu", r"custom_call @__gpu\$xla\.gpu\.triton"),
    ("tpu", "pallas_tpu", r"custom_call @tpu_custom_call"),
])
@pytest.mark.parametrize("op", ["block", "block+features", "row"])
def test_lowers_for_platform(platform, impl, target, op):
  q = jax.ShapeDtypeStruct((B, H, T, D), jnp.bfloat16)
  kv = jax.ShapeDtypeStruct((B, 1 if op != "block" else H, T, D), jnp.bfloat16)
  index = (jax.ShapeDtypeStruct((B, H, T // BLOCK, 3), jnp.int32)
           if op.startswith("block") else
           jax.ShapeDtypeStruct((B, H, T, 16), jnp.int32))
  rows = 2 * MAX_DISTANCE + 1
  features = ((jax.ShapeDtypeStruct((B, T), jnp.int32),
               jax.ShapeDtypeStruct((H, rows, D), jnp.float32),
               jax.ShapeDtypeStruct((rows, D), jnp.float32))
              if op == "block+features" else ())
  exported = export.export(
      jax.jit(_fwd_bwd(op, impl)), platforms=[platform],
      # Triton calls carry no serialization-compatibility guarantee; we only
      # inspect the lowered module, never deserialize it.
      disabled_checks=[
          export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")],
  )(q, kv, kv, index, *features)
  text = exported.mlir_module()
  assert len(re.findall(target, text)) == 3  # forward, dq, dk/dv
  suffix = "gpu" if platform == "cuda" else "tpu"
  # The row-sparse TPU path reuses the block-sparse TPU kernels.
  kernel_op = "block" if suffix == "tpu" else op.split("+")[0]
  for part in ("fwd", "dq", "dkv"):
    assert f"{kernel_op}_sparse_{part}_{suffix}" in text
