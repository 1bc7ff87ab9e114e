"""Resolves the `impl=` switch shared by every sparse-attention op.

Accepted values and what they run:

| impl            | runs                                                              |
|-----------------|-------------------------------------------------------------------|
| "auto"          | Pallas TPU body on TPU, Pallas GPU (Triton) body on GPU, the      |
|                 | memory-efficient XLA path elsewhere; also the XLA path on TPU/GPU |
|                 | when the shapes are outside what the kernel takes (and, on GPU,   |
|                 | for the block op's Shaw tables: measured faster on XLA)           |
| "xla"           | the gather-based XLA path (never builds a Tq x Tk matrix)         |
| "reference"     | the dense, pure-jnp `*_reference` (for tests; O(Tq*Tk) memory)    |
| "pallas_tpu"    | the Pallas TPU body, compiled by Mosaic                           |
| "pallas_gpu"    | the Pallas GPU body, compiled by Triton                           |
| "interpret"     | alias of "interpret_gpu"                                          |
| "interpret_gpu" | the GPU body under Pallas' HLO interpreter (`interpret=True`)     |
| "interpret_tpu" | the TPU body under the TPU interpreter (`pltpu.InterpretParams`)  |

Rule for the interpreters: "interpret" runs the GPU body because the HLO
interpreter is pure JAX (it composes with jit, vmap, grad and shard_map,
including `check_vma=True`), while the TPU interpreter simulates DMAs and
scalar-prefetch memory through host callbacks, is slower, and is therefore the
explicit opt-in "interpret_tpu". Both run on CPU.
"""
from __future__ import annotations

import jax

IMPLS = ("auto", "xla", "reference", "pallas_tpu", "pallas_gpu", "interpret",
         "interpret_gpu", "interpret_tpu")

# The resolved names the ops switch on.
XLA = "xla"
REFERENCE = "reference"
PALLAS_TPU = "pallas_tpu"
PALLAS_GPU = "pallas_gpu"
INTERPRET_GPU = "interpret_gpu"
INTERPRET_TPU = "interpret_tpu"

PALLAS_IMPLS = (PALLAS_TPU, PALLAS_GPU, INTERPRET_GPU, INTERPRET_TPU)
TPU_BODY_IMPLS = (PALLAS_TPU, INTERPRET_TPU)
GPU_BODY_IMPLS = (PALLAS_GPU, INTERPRET_GPU)


def validate_impl(impl) -> str:
  """Returns `impl` if it is a known value, else raises ValueError."""
  if not isinstance(impl, str) or impl not in IMPLS:
    raise ValueError(f"impl={impl!r} is not supported; allowed: {IMPLS}.")
  return impl


def resolve_impl(impl, *, kernel_fits_tpu: bool = True,
                 kernel_fits_gpu: bool = True) -> str:
  """Maps a user-facing `impl` onto one concrete implementation name.

  Args:
    impl: one of IMPLS.
    kernel_fits_tpu: whether the shapes meet the TPU kernel's tiling rules;
      only consulted for "auto" (an explicit "pallas_tpu" raises in the op).
    kernel_fits_gpu: the same for the Triton kernel.

  Returns:
    One of "xla", "reference", "pallas_tpu", "pallas_gpu", "interpret_gpu",
    "interpret_tpu".
  """
  impl = validate_impl(impl)
  if impl == "interpret":
    return INTERPRET_GPU
  if impl != "auto":
    return impl
  backend = jax.default_backend()
  if backend == "tpu" and kernel_fits_tpu:
    return PALLAS_TPU
  if backend in ("gpu", "cuda", "rocm") and kernel_fits_gpu:
    return PALLAS_GPU
  return XLA
