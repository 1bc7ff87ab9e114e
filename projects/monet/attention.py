"""LLaMA attention used by Monet: rotate_half RoPE and causal attention with a KV cache.

Numerics follow HF transformers 4.46.3 `modeling_llama.py` (the official Monet code imports
`LlamaRMSNorm` and `LLAMA_ATTENTION_CLASSES` from there, [M:L16-19]). The RMSNorm is
`common.layers.norms.RMSNorm(cast_before_scale=True)`; parameters come from `common.layers.keys`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from common.layers.keys import KeyStream, param

# HF `_init_weights` draws every Linear/Embedding weight from N(0, initializer_range=0.02)
# ([M:L281-290]).
DEFAULT_INIT = nnx.initializers.normal(0.02)


def rope_cos_sin(positions: jax.Array, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
  """cos/sin tables (..., T, head_dim) of HF LlamaRotaryEmbedding (default rope type), in float32."""
  # inv_freq = 1 / theta ** (arange(0, D, 2) / D), computed in float32 as HF does.
  exponent = jnp.arange(0, head_dim, 2, dtype=jnp.int32).astype(jnp.float32) / head_dim
  inv_freq = 1.0 / (jnp.float32(theta) ** exponent)
  freqs = positions.astype(jnp.float32)[..., None] * inv_freq
  emb = jnp.concatenate([freqs, freqs], axis=-1)
  return jnp.cos(emb), jnp.sin(emb)


def rotate_half(x: jax.Array) -> jax.Array:
  half = x.shape[-1] // 2
  return jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """NeoX/rotate_half RoPE on x (B, T, heads, D) with cos/sin (B, T, D)."""
  cos = cos[:, :, None, :].astype(x.dtype)
  sin = sin[:, :, None, :].astype(x.dtype)
  return x * cos + rotate_half(x) * sin


class Attention(nnx.Module):
  """HF LlamaAttention (eager): q/k/v/o projections without bias, RoPE, causal softmax in float32.

  Kernels are stored as (in, heads, head_dim) / (heads, head_dim, out) so that the logical axes
  'heads' and 'kv' can be sharded. The softmax runs in float32 and is cast back, as HF's eager path.
  """

  def __init__(self, hidden: int, num_heads: int, num_kv_heads: int, *, rope_theta: float,
               dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
    self.head_dim = hidden // num_heads
    self.rope_theta = rope_theta
    self.dtype = dtype
    d, hd = hidden, self.head_dim
    keys = KeyStream.of(rngs)
    self.q = param(DEFAULT_INIT, ("embed", "heads", "kv"), keys, (d, num_heads, hd), param_dtype)
    self.k = param(DEFAULT_INIT, ("embed", "heads", "kv"), keys, (d, num_kv_heads, hd), param_dtype)
    self.v = param(DEFAULT_INIT, ("embed", "heads", "kv"), keys, (d, num_kv_heads, hd), param_dtype)
    self.o = param(DEFAULT_INIT, ("heads", "kv", "embed"), keys, (num_heads, hd, d), param_dtype)

  def __call__(self, x: jax.Array, positions: jax.Array, *, mask: jax.Array | None = None,
               cache: tuple[jax.Array, jax.Array] | None = None, cache_index: jax.Array | None = None
               ) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
    """Attends causally.

    Args:
      x: (B, T, d) normalised input.
      positions: (B, T) int positions (RoPE and causality).
      mask: optional (B, S) bool key-padding mask (True = attend), S = T without cache, else the
        cache length.
      cache: optional (k, v), each (B, S, kv_heads, head_dim); the new keys are written at
        `cache_index` and the updated cache is returned.
      cache_index: scalar int, where the T new tokens go in the cache.

    Returns:
      (B, T, d) output and the updated cache (None without cache).
    """
    dt = self.dtype
    x = x.astype(dt)
    q = jnp.einsum("btd,dhk->bthk", x, self.q[...].astype(dt))
    k = jnp.einsum("btd,dhk->bthk", x, self.k[...].astype(dt))
    v = jnp.einsum("btd,dhk->bthk", x, self.v[...].astype(dt))
    cos, sin = rope_cos_sin(positions, self.head_dim, self.rope_theta)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)

    if cache is None:
      key_pos = positions
      new_cache = None
    else:
      ck, cv = cache
      zero = jnp.zeros((), jnp.int32)
      k = jax.lax.dynamic_update_slice(ck, k.astype(ck.dtype), (zero, cache_index, zero, zero))
      v = jax.lax.dynamic_update_slice(cv, v.astype(cv.dtype), (zero, cache_index, zero, zero))
      new_cache = (k, v)
      k, v = k.astype(dt), v.astype(dt)
      # Slots past the written tokens hold zeros; they fail `key_pos <= query_pos` below.
      key_pos = jnp.broadcast_to(jnp.arange(ck.shape[1], dtype=positions.dtype), (x.shape[0], ck.shape[1]))

    groups = self.num_heads // self.num_kv_heads
    if groups > 1:  # GQA: HF repeat_kv repeats each kv head for `groups` consecutive q heads.
      k, v = jnp.repeat(k, groups, axis=2), jnp.repeat(v, groups, axis=2)
    # HF divides q.k by sqrt(head_dim) after the matmul (modeling_llama.py, eager attention).
    scores = jnp.einsum("bqhk,bshk->bhqs", q, k) / jnp.sqrt(jnp.asarray(self.head_dim, dt))
    allowed = key_pos[:, None, None, :] <= positions[:, None, :, None]
    if mask is not None:
      allowed = allowed & mask[:, None, None, :].astype(bool)
    # HF fills with finfo.min rather than -inf, so a fully masked row stays finite.
    scores = jnp.where(allowed, scores.astype(jnp.float32), jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(dt)
    out = jnp.einsum("bhqs,bshk->bqhk", probs, v)
    return jnp.einsum("bthk,hkd->btd", out, self.o[...].astype(dt)), new_cache


__all__ = ["Attention", "rope_cos_sin", "apply_rope", "rotate_half", "DEFAULT_INIT"]
