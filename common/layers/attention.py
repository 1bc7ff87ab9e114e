"""Multi-head dot-product attention (self or cross), with masks and an additive bias.

The core is a plain einsum softmax rather than `jax.nn.dot_product_attention`: it supports an
additive bias (T5's relative position bias), arbitrary boolean masks and dropout on the
attention weights together, on every backend, and is easy to read against a paper. Logits and
the softmax are computed in float32 whatever the compute dtype. Memory is O(Tq * Tk) per head;
long-sequence projects use the Pallas kernels in common/kernels instead.

Masks are boolean, broadcastable to [B, H, Tq, Tk], True where a query may attend to a key.
A query row with no allowed key gets uniform weights (not NaN); its output is meaningless and
the caller is expected to ignore it (padding positions).

No KV cache: decoding is teacher-forced only.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.layers import initializers, validation
from common.layers.dropout import Dropout

# Large but finite, so that bias + mask never overflows to -inf and fully masked rows stay finite.
_MASKED = -1e10


def make_causal_mask(q_len: int, k_len: int | None = None) -> jax.Array:
  """[1, 1, Tq, Tk] boolean mask: query i may see keys j <= i (+ Tk - Tq when Tk > Tq)."""
  k_len = q_len if k_len is None else k_len
  q = jnp.arange(q_len)[:, None] + (k_len - q_len)
  return (jnp.arange(k_len)[None, :] <= q)[None, None]


def make_attention_mask(query_valid: jax.Array, key_valid: jax.Array) -> jax.Array:
  """[B, 1, Tq, Tk] boolean mask from per-token validity [B, Tq] and [B, Tk]."""
  return (query_valid[:, None, :, None].astype(bool) & key_valid[:, None, None, :].astype(bool))


def dot_product_attention(query: jax.Array, key: jax.Array, value: jax.Array, *,
                          scale: float, bias: jax.Array | None = None,
                          mask: jax.Array | None = None,
                          dropout: Dropout | None = None, train: bool = False,
                          rngs: nnx.Rngs | None = None) -> jax.Array:
  """softmax(scale * q k^T + bias, masked) v.

  Args:
    query [B, Tq, H, Dh]; key, value [B, Tk, H, Dh]; bias broadcastable to [B, H, Tq, Tk];
    mask boolean broadcastable to [B, H, Tq, Tk] (True = attend);
    dropout on the attention weights, active only with `train` (its key from `rngs.dropout()`).
  Returns:
    [B, Tq, H, Dh] in the dtype of `value`.
  """
  # Heads moved ahead of time first: XLA:CPU then runs both einsums as plain batched matmuls;
  # contracting the [B, T, H, D] layout directly took ~3x as long (ViT-B/16, benchmarks/vision.py).
  query, key, value = (jnp.swapaxes(a, 1, 2) for a in (query, key, value))
  # A batch of one is dropped: a size-1 axis in the softmax's reductions sends them to a slow
  # path of XLA:CPU's YNN fusions (jaxlib 0.10.2: the dense causal layer at B = 1, T = 4096 took
  # 610 ms forward+backward with it, 455 ms without; benchmarks/RESULTS.md).
  single = query.shape[0] == 1
  if single:
    query, key, value = query[0], key[0], value[0]
    bias, mask = (x[0] if x is not None and jnp.ndim(x) == 4 else x for x in (bias, mask))
  logits = jnp.einsum("...qd,...kd->...qk", query, key, preferred_element_type=jnp.float32)
  logits = logits * scale
  if bias is not None:
    logits = logits + bias.astype(jnp.float32)
  if mask is not None:
    logits = jnp.where(mask, logits, _MASKED)
  weights = jax.nn.softmax(logits, axis=-1)
  if dropout is not None:
    weights = dropout(weights[None] if single else weights, train=train, rngs=rngs)
    weights = weights[0] if single else weights
  out = jnp.einsum("...qk,...kd->...qd", weights.astype(value.dtype), value)
  return jnp.swapaxes(out[None] if single else out, 1, 2)


# Query rows per chunk of causal_attention. Each chunk reads only the keys up to its last row,
# so most of the masked upper triangle is never computed: on XLA:CPU at T = 2048 (B 4, H 2,
# D 32) forward+backward took 127 ms against 262 ms for one masked [T, T] pass.
CAUSAL_CHUNK = 256


def causal_attention(query: jax.Array, key: jax.Array, value: jax.Array, *, scale: float,
                     chunk: int = CAUSAL_CHUNK) -> jax.Array:
  """Causal self-attention (query i reads keys j <= i), query chunk by query chunk.

  The same values as `dot_product_attention` under a causal mask (a masked key's weight is an
  exact 0, so a chunk that never sees it sums the same terms), at about half the work for
  T >> chunk. Shapes [B, T, H, Dh] for all three; returns [B, T, H, Dh].
  """
  t = query.shape[1]
  outs = []
  for start in range(0, t, chunk):
    stop = min(t, start + chunk)
    mask = np.tril(np.ones((stop - start, stop), bool), k=start)  # row r is query start + r
    outs.append(dot_product_attention(query[:, start:stop], key[:, :stop], value[:, :stop],
                                      scale=scale, mask=mask))
  return jnp.concatenate(outs, axis=1)


# Query rows per chunk of chunked_attention. A chunk's [chunk, Tk] logits stay in cache through
# the softmax and both products: on XLA:CPU at B 32, T 784, H 2, Dh 16, forward+backward took
# 186 ms in 56-row chunks against 344 ms in one pass (112 rows 228, 28 rows 210; 2026-12-05).
# At T ~ 200 chunking neither helps nor hurts.
QUERY_CHUNK = 64


def chunked_attention(query: jax.Array, key: jax.Array, value: jax.Array, *, scale: float,
                      chunk: int = QUERY_CHUNK) -> jax.Array:
  """Full (non-causal) attention, query chunk by query chunk, no mask or bias.

  The same values as `dot_product_attention` (each query row's softmax is its own), faster on
  CPU for long sequences (QUERY_CHUNK). Shapes [B, Tq, H, Dh] and [B, Tk, H, Dh];
  returns [B, Tq, H, Dh].
  """
  t = query.shape[1]
  return jnp.concatenate([dot_product_attention(query[:, i:i + chunk], key, value, scale=scale)
                          for i in range(0, t, chunk)], axis=1)


class MultiHeadAttention(nnx.Module):
  """q/k/v projections [D -> H x Dh] ('embed', 'heads', 'kv'), attention, output [H x Dh -> D].

  Args:
    num_heads: H.
    in_features: D of the queries (and of the keys/values unless `kv_features` is given).
    head_dim: Dh; defaults to in_features // num_heads (which must then divide evenly).
    kv_features: width of the key/value input for cross-attention; defaults to in_features.
    out_features: defaults to in_features.
    use_bias: biases on all four projections (ViT: yes; T5: no).
    query_scale: multiplier on the logits; None means 1/sqrt(head_dim). T5 passes 1.0 and folds
      the scale into the query initialiser instead.
    dropout_rate: dropout on the attention weights.
    kernel_init: initialiser applied to each projection seen as a 2-D matrix;
      query_kernel_init / out_kernel_init override it for those projections.
    dtype, param_dtype: compute and parameter dtypes.
  """

  def __init__(self, num_heads: int, in_features: int, *, head_dim: int | None = None,
               kv_features: int | None = None, out_features: int | None = None,
               use_bias: bool = True, query_scale: float | None = None,
               dropout_rate: float = 0.0,
               kernel_init: initializers.Initializer = nnx.initializers.xavier_uniform(),
               query_kernel_init: initializers.Initializer | None = None,
               out_kernel_init: initializers.Initializer | None = None,
               bias_init: initializers.Initializer = nnx.initializers.zeros,
               dtype: Any = None, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    validation.check_positive("num_heads", num_heads)
    if head_dim is None:
      validation.check_divides("in_features", in_features, "num_heads", num_heads)
      head_dim = in_features // num_heads
    validation.check_rate("attention dropout_rate", dropout_rate)
    kv_features = kv_features or in_features
    out_features = out_features or in_features
    self.num_heads = num_heads
    self.head_dim = head_dim
    self.query_scale = 1.0 / math.sqrt(head_dim) if query_scale is None else query_scale
    self.dtype = dtype

    def param(init, shape, axes, num_in_axes):
      init = nnx.with_partitioning(initializers.as_matrix(init, num_in_axes), axes)
      return nnx.Param(init(rngs.params(), shape, param_dtype))

    def bias(shape, axes):
      init = nnx.with_partitioning(bias_init, axes)
      return nnx.Param(init(rngs.params(), shape, param_dtype)) if use_bias else None

    qkv_axes = ("embed", "heads", "kv")
    self.query = param(query_kernel_init or kernel_init, (in_features, num_heads, head_dim),
                       qkv_axes, 1)
    self.key = param(kernel_init, (kv_features, num_heads, head_dim), qkv_axes, 1)
    self.value = param(kernel_init, (kv_features, num_heads, head_dim), qkv_axes, 1)
    self.out = param(out_kernel_init or kernel_init, (num_heads, head_dim, out_features),
                     ("heads", "kv", "embed"), 2)
    self.query_bias = bias((num_heads, head_dim), ("heads", "kv"))
    self.key_bias = bias((num_heads, head_dim), ("heads", "kv"))
    self.value_bias = bias((num_heads, head_dim), ("heads", "kv"))
    self.out_bias = bias((out_features,), ("embed",))
    self.dropout = Dropout(dropout_rate)

  def _project(self, x, kernel, bias):
    dtype = self.dtype or x.dtype
    y = jnp.einsum("btd,dhk->bthk", x.astype(dtype), kernel[...].astype(dtype))
    return y if bias is None else y + bias[...].astype(dtype)

  def __call__(self, inputs_q: jax.Array, inputs_kv: jax.Array | None = None, *,
               mask: jax.Array | None = None, bias: jax.Array | None = None,
               causal: bool = False, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Args:
      inputs_q [B, Tq, D]; inputs_kv [B, Tk, Dkv] (None: self-attention on inputs_q);
      mask boolean, broadcastable to [B, H, Tq, Tk]; bias additive, broadcastable likewise;
      causal: also apply `make_causal_mask(Tq, Tk)` (plain causal self-attention longer than
        CAUSAL_CHUNK runs as causal_attention: the same values, about half the work);
      train: attention-weight dropout on (needs `rngs` with a 'dropout' stream when the rate > 0).
    Returns: [B, Tq, out_features].
    """
    inputs_kv = inputs_q if inputs_kv is None else inputs_kv
    q = self._project(inputs_q, self.query, self.query_bias)
    k = self._project(inputs_kv, self.key, self.key_bias)
    v = self._project(inputs_kv, self.value, self.value_bias)
    dropping = train and self.dropout is not None and self.dropout.rate > 0
    if (causal and mask is None and bias is None and not dropping
        and q.shape[1] == k.shape[1] > CAUSAL_CHUNK):
      # Plain causal self-attention longer than one chunk: the same values for about half the
      # work (causal_attention).
      y = causal_attention(q, k, v, scale=self.query_scale)
    else:
      if causal:
        causal_mask = make_causal_mask(q.shape[1], k.shape[1])
        mask = causal_mask if mask is None else jnp.logical_and(mask, causal_mask)
      y = dot_product_attention(q, k, v, scale=self.query_scale, bias=bias, mask=mask,
                                dropout=self.dropout, train=train, rngs=rngs)
    dtype = self.dtype or y.dtype
    y = jnp.einsum("bthk,hkd->btd", y, self.out[...].astype(dtype))
    if self.out_bias is not None:
      y = y + self.out_bias[...].astype(dtype)
    # Named so the 'save_block_outputs' remat policy can keep it (common.layers.remat).
    return checkpoint_name(y, "attn_out")
