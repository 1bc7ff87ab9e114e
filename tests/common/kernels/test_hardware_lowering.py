"""The compiled (non-interpret) Pallas bodies lower for CUDA and TPU, forward and backward.

No accelerator is needed: jax.export lowers for another platform, which runs
Pallas' Triton and Mosaic lowering rules (kernel body -> Triton IR / Mosaic
MLIR, block-shape and scalar-prefetch checks). It cannot run the device
compilers (Triton -> PTX, Mosaic layout passes in libtpu), so it proves the
kernels are expressible on both backends, not that they compile or are fast.
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


def _fwd_bwd(op, impl):
  def loss(q, k, v, index):
    if op == "block":
      o = block_sparse_attention(q, k, v, index, block_q=BLOCK, block_k=BLOCK,
                                 causal=True, impl=impl)
    else:
      o = row_sparse_attention(q, k, v, index, impl=impl)
    return jnp.sum(o.astype(jnp.float32))

  return jax.grad(loss, argnums=(0, 1, 2))


@pytest.mark.parametrize("platform,impl,target", [
    ("cuda", "pallas_gpu", r"custom_call @__gpu\$xla\.gpu\.triton"),
    ("tpu", "pallas_tpu", r"custom_call @tpu_custom_call"),
])
@pytest.mark.parametrize("op", ["block", "row"])
def test_lowers_for_platform(platform, impl, target, op):
  qkv = jax.ShapeDtypeStruct((B, H, T, D), jnp.bfloat16)
  index = (jax.ShapeDtypeStruct((B, H, T // BLOCK, 3), jnp.int32)
           if op == "block" else
           jax.ShapeDtypeStruct((B, H, T, 16), jnp.int32))
  exported = export.export(
      jax.jit(_fwd_bwd(op, impl)), platforms=[platform],
      # Triton calls carry no serialization-compatibility guarantee; we only
      # inspect the lowered module, never deserialize it.
      disabled_checks=[
          export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")],
  )(qkv, qkv, qkv, index)
  text = exported.mlir_module()
  assert len(re.findall(target, text)) == 3  # forward, dq, dk/dv
  suffix = "gpu" if platform == "cuda" else "tpu"
  # The row-sparse TPU path reuses the block-sparse TPU kernels.
  kernel_op = "block" if suffix == "tpu" else op
  for part in ("fwd", "dq", "dkv"):
    assert f"{kernel_op}_sparse_{part}_{suffix}" in text
