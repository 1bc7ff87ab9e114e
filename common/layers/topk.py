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
  backend (measured on CPU inside a ViT/T5 MLP: ~10 % over a dense MLP's step, 'exact' ~60 %).
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

from common.layers import validation

TOPK_MODES = ("threshold", "exact", "approx")


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
    # min over the k values equals the last one; slicing [..., -1:] instead made XLA:CPU's
    # step ~12x slower (measured on [1024, 512], k=21), min does not.
    kth = jnp.min(jax.lax.top_k(x, k)[0], axis=-1, keepdims=True)
    return (x >= kth).astype(x.dtype)
  if mode == "approx":
    _, idx = jax.lax.approx_max_k(x, k, recall_target=recall_target)
  else:
    _, idx = jax.lax.top_k(x, k)
  ones = jnp.ones(idx.shape, x.dtype)
  return jnp.put_along_axis(jnp.zeros_like(x), idx, ones, axis=-1, inplace=False)


def topk_threshold(x: jax.Array, k: int, *, mode: str = "threshold",
                   recall_target: float = 0.95) -> jax.Array:
  """Keeps the k largest entries of `x` along the last axis, zeroes the rest (see module doc)."""
  return x * topk_mask(x, k, mode=mode, recall_target=recall_target)
