"""Pallas sparse-attention kernels with XLA fallbacks and dense references.

Import the op you need (this package imports nothing eagerly):

* block_sparse_attention.block_sparse_attention: query blocks attend to listed
  key/value blocks (Routing Transformer clusters, BiFormer regions).
* row_sparse_attention.row_sparse_attention: each query attends to its own key
  list (SEA masks, top-k attention).

Each op is a jax.custom_vjp with an `impl=` switch (dispatch.py), a pure-jnp
`*_reference`, a gather-based XLA path (`*_xla.py`) and Pallas TPU / GPU bodies
(`*_tpu.py`, `*_gpu.py`). Shared pieces: sparse_indices.py (list compaction,
transposed lists), attention_math.py (softmax bookkeeping, lse convention),
block_size.py (block and chunk choice), validation.py, pallas_support.py (every
Pallas wrapper), gpu_support.py (the two Triton wrappers' BlockSpecs and padding).
"""
