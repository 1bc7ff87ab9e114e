"""Top-k thresholding of activations along the last axis (the Top-k Transformer's sparsifier).

`topk_threshold(a, k)` keeps the k largest entries of `a` per position of the leading axes and
zeroes the rest. The output is `a * stop_gradient(mask)`, so the gradient reaches the kept
entries unchanged and is zero elsewhere: the selection itself is not differentiated, as in the
paper's definition (sequence.md §3: a_k = a ⊙ 1[a >= tau_k(a)]).

Modes (what is kept when values tie, and how the set is found):

- 'threshold' (default): keep `a >= (k-th largest value)`, the paper's formula as written. Ties
  at the threshold are all kept, so more than k entries may survive. After a ReLU the ties that
  occur are zeros (fewer than k positive entries), where keeping them changes nothing; positive
  ties need equal float values (likelier in bfloat16). No scatter: the cheapest mode on every
  backend. The k-th value is `kth_largest`: `lax.top_k` on accelerators; on CPU, where
  XLA sorts every row for `top_k`, an exact radix select (the same value, ~5x faster on
  [1024, 512], k = 111: 3.7 vs 18 ms).
- 'exact': `lax.top_k` indices scattered into a mask, so exactly k entries are kept. Ties at the
  k-th value are broken towards the lower index (lax.top_k is stable). Use it where a fixed
  count matters (signed activations, low precision).
- 'approx': `lax.approx_max_k(recall_target=...)` indices scattered into a mask: exactly k entries,
  an approximate top-k set on TPU (exact on CPU and GPU, where XLA falls back to a sort). Whether
  the paper used approximate top-k is NOT confirmed (paper_facts.md §1.3); this is offered because
  the paper's code base was TPU-first, not because it is known to be what they ran.

Ranking is by value, not magnitude: for ReLU outputs the two agree; for signed activations
(GELU, gated) the most negative entries are treated as the smallest.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from common.layers import validation

TOPK_MODES = ("threshold", "exact", "approx")
_SIGN = np.uint32(0x80000000)   # numpy: no device array at import


def topk_mask(x: jax.Array, k: int, *, mode: str = "threshold",
              recall_target: float = 0.95) -> jax.Array:
  """Returns a {0, 1} mask (dtype of `x`) marking the kept entries of `x` along the last axis."""
  validation.check_choice("topk mode", mode, TOPK_MODES)
  size = x.shape[-1]
  if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= size:
    raise ValueError(f"top_k={k!r} must be an integer in [1, {size}] (the size of the last axis).")
  x = jax.lax.stop_gradient(x)
  if k == size:
    return jnp.ones_like(x)
  if mode == "threshold":
    return (x >= kth_largest(x, k)).astype(x.dtype)
  if mode == "approx":
    _, idx = jax.lax.approx_max_k(x, k, recall_target=recall_target)
  else:
    _, idx = jax.lax.top_k(x, k)
  ones = jnp.ones(idx.shape, x.dtype)
  return jnp.put_along_axis(jnp.zeros_like(x), idx, ones, axis=-1, inplace=False)


def kth_largest(x: jax.Array, k: int) -> jax.Array:
  """The k-th largest value of `x` along the last axis, shape `x.shape[:-1] + (1,)`."""
  def by_sort(x):
    # min over the k values equals the last one; slicing [..., -1:] instead made XLA:CPU's
    # step ~12x slower (measured on [1024, 512], k=21), min does not.
    return jnp.min(jax.lax.top_k(x, k)[0], axis=-1, keepdims=True)
  if x.dtype not in (jnp.float32, jnp.bfloat16, jnp.float16):
    return by_sort(x)
  return jax.lax.platform_dependent(x, cpu=lambda x: _radix_select(x, k), default=by_sort)


def order_preserving_bits(x: jax.Array) -> jax.Array:
  """float32 (or narrower) -> uint32 with the same order: negatives have all their bits flipped,
  the others their sign bit set; -0.0 becomes +0.0 first, since the two compare equal."""
  x = x.astype(jnp.float32)
  bits = jax.lax.bitcast_convert_type(jnp.where(x == 0, jnp.float32(0), x), jnp.uint32)
  return jnp.where(bits >= _SIGN, ~bits, bits | _SIGN)


# Bytes a block of rows may hold in `map_row_blocks` on CPU, so that passes that re-read a
# block read cache, not memory (AMD EPYC, 2 MB of L2 a core, 32 MB L3): `kth_largest_key` on
# [4096, 1024] keys took 26-28 ms in one block of 16 MB and 12-14 ms in blocks of 4 MB.
SEARCH_BLOCK_BYTES = 4 * 2**20


def map_row_blocks(fn, xs, row_bytes: int):
  """`fn` (one row's arrays -> its results) over the leading axis of the arrays `xs`, in blocks
  of SEARCH_BLOCK_BYTES // row_bytes rows on CPU (`lax.map` with `batch_size`), in one block
  elsewhere, where each block would be a sequential step. For work that passes over each row
  many times: kth_largest_key's search, SEA's selection (projects/sea/masks.py)."""
  rows = xs[0].shape[0]
  block = rows
  if jax.default_backend() == "cpu":
    block = max(1, min(rows, SEARCH_BLOCK_BYTES // row_bytes))
  if block == rows:
    return jax.vmap(fn)(*xs)
  return jax.lax.map(lambda row: fn(*row), xs, batch_size=block)


def kth_largest_key(key: jax.Array, k) -> jax.Array:
  """The k-th largest of uint32 `key` along the last axis, [..., 1], by a bitwise binary search:
  from the top bit down, a bit stays set while at least k keys are >= the prefix (32
  compare-and-count passes, no sort). k: an int, or ints broadcastable to key.shape[:-1].
  On CPU the rows go in cache-sized blocks (`map_row_blocks`)."""
  *lead, c = key.shape
  k = jnp.broadcast_to(jnp.asarray(k), lead)
  rows = int(np.prod(lead))
  out = map_row_blocks(_bit_search, (key.reshape(rows, c), k.reshape(rows, 1)), 4 * c)
  return out.reshape(*lead, 1)


def _bit_search(key: jax.Array, k: jax.Array) -> jax.Array:
  """kth_largest_key's search over `key` [..., C] (one row, or rows at once); k: [..., 1]."""

  def next_bit(i, prefix):
    candidate = prefix | (_SIGN >> i.astype(jnp.uint32))
    # Counted in float32 (exact below 2^24 keys a row): ~20% faster than an int32 sum on XLA:CPU.
    count = jnp.sum((key >= candidate).astype(jnp.float32), axis=-1, keepdims=True)
    return jnp.where(count >= k, candidate, prefix)

  return jax.lax.fori_loop(0, 32, next_bit, jnp.zeros(key.shape[:-1] + (1,), jnp.uint32))


def _radix_select(x: jax.Array, k: int) -> jax.Array:
  """Exact k-th largest value of float `x` (float32 / bfloat16 / float16) along the last axis."""
  bits = kth_largest_key(order_preserving_bits(x), k)
  bits = jnp.where(bits >= _SIGN, bits ^ _SIGN, ~bits)   # back to float32's bits
  return jax.lax.bitcast_convert_type(bits, jnp.float32).astype(x.dtype)


def topk_threshold(x: jax.Array, k: int, *, mode: str = "threshold",
                   recall_target: float = 0.95) -> jax.Array:
  """Keeps the k largest entries of `x` along the last axis, zeroes the rest (see module doc)."""
  return x * topk_mask(x, k, mode=mode, recall_target=recall_target)
