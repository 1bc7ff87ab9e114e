"""Pallas sparse-attention kernels with XLA fallbacks and dense references.

Import the op you need (this package imports nothing eagerly):

* block_sparse_attention.block_sparse_attention: query blocks attend to listed
  key/value blocks (Routing Transformer clusters, BiFormer regions).
* row_sparse_attention.row_sparse_attention: each query attends to its own key
  list (SEA masks, top-k attention).

Both take segment ids (q_segment_ids [B, Tq], kv_segment_ids [B, Tk]) and
GQA/MQA k, v with H_kv heads (H % H_kv == 0, never repeated in memory);
block_sparse_attention also takes Shaw relative-position tables (rel_keys,
rel_values: [R, D] or [H, R, D]), as the Routing Transformer's official text
setting uses. Every impl implements every feature, forward and backward.

Each op is a jax.custom_vjp with an `impl=` switch (dispatch.py), a pure-jnp
`*_reference`, a gather-based XLA path (`*_xla.py`) and Pallas TPU / GPU bodies
(`*_tpu.py`, `*_gpu.py`). Shared pieces: sparse_indices.py (list compaction,
transposed lists), attention_math.py (softmax bookkeeping, lse convention),
relative_positions.py (the Shaw buckets, their XLA gathers and the kernels'
per-tile bucket loops), extras.py (how segment ids and tables travel to the
impls), block_size.py (block and chunk choice), validation.py,
pallas_support.py (every Pallas wrapper), gpu_support.py (the two Triton
wrappers' BlockSpecs and padding).
"""
