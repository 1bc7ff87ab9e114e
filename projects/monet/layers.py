"""LLaMA building blocks used by Monet: RMSNorm, rotate_half RoPE and causal attention with a KV cache.

Numerics follow HF transformers 4.46.3 `modeling_llama.py` (the official Monet code imports
`LlamaRMSNorm` and `LLAMA_ATTENTION_CLASSES` from there, [M:L16-19]). These are generic and small;
RMSNorm, `rope_*` and `param` could move to common/layers once that package settles.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

# HF `_init_weights` draws every Linear/Embedding weight from N(0, initializer_range=0.02)
# ([M:L281-290]).
DEFAULT_INIT = nnx.initializers.normal(0.02)


class KeySeq:
  """Draws one key from `rngs` and derives per-parameter keys from it with Python-side counters.

  Every `rngs.params()` call writes a traced counter; under nnx.eval_shape that write costs time
  linear in the trace so far (jax builds an error message for the tracer's missing `.sharding`),
  so counting a 4B-parameter preset took ~10 s. The model draws once and hands its KeySeq to the
  submodules in place of `rngs`; a submodule built alone starts its own.
  """

  def __init__(self, rngs: nnx.Rngs):
    self._key = rngs.params()
    self._count = 0

  @classmethod
  def of(cls, rngs: "nnx.Rngs | KeySeq") -> "KeySeq":
    """Shares a parent's KeySeq (one draw per model) or starts one from an nnx.Rngs."""
    return rngs if isinstance(rngs, KeySeq) else cls(rngs)

  def __call__(self) -> jax.Array:
    self._count += 1
    return jax.random.fold_in(self._key, self._count)


def param(keys: KeySeq | None, init, shape: Sequence[int], axes: Sequence[str | None], dtype
          ) -> nnx.Param:
  """A Param carrying logical-axis names (batch/embed/mlp/heads/kv/vocab/expert/None).

  `keys` may be None for deterministic initialisers (ones, zeros).
  """
  if len(axes) != len(shape):
    raise ValueError(f"param axes={tuple(axes)} do not match shape={tuple(shape)}.")
  key = jax.random.key(0) if keys is None else keys()
  return nnx.Param(nnx.with_partitioning(init, tuple(axes))(key, tuple(shape), dtype))


class RMSNorm(nnx.Module):
  """HF LlamaRMSNorm: normalise in float32, cast back, then scale (weight * x.to(dtype))."""

  def __init__(self, dim: int, *, eps: float = 1e-6, param_dtype=jnp.float32, rngs: nnx.Rngs):
    del rngs  # ones: nothing to draw
    self.eps = eps
    self.weight = param(None, nnx.initializers.ones, (dim,), ("embed",), param_dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    xf = x.astype(jnp.float32)
    xf = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + self.eps)
    # HF multiplies weight by the down-cast activations, so the product takes the wider dtype.
    return self.weight[...] * xf.astype(x.dtype)


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
    keys = KeySeq.of(rngs)
    self.q = param(keys, DEFAULT_INIT, (d, num_heads, hd), ("embed", "heads", "kv"), param_dtype)
    self.k = param(keys, DEFAULT_INIT, (d, num_kv_heads, hd), ("embed", "heads", "kv"), param_dtype)
    self.v = param(keys, DEFAULT_INIT, (d, num_kv_heads, hd), ("embed", "heads", "kv"), param_dtype)
    self.o = param(keys, DEFAULT_INIT, (num_heads, hd, d), ("heads", "kv", "embed"), param_dtype)

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


def activation(name: str):
  """The expert nonlinearity; "relu2" (HF ACT2FN) is relu(x)**2."""
  if name == "relu2":
    return lambda x: jnp.square(jax.nn.relu(x))
  if name == "relu":
    return jax.nn.relu
  if name == "silu":
    return jax.nn.silu
  if name == "gelu":
    return lambda x: jax.nn.gelu(x, approximate=False)
  raise ValueError(f"hidden_act={name!r}: allowed values are relu2, relu, silu, gelu.")


__all__ = ["KeySeq", "RMSNorm", "Attention", "rope_cos_sin", "apply_rope", "rotate_half",
           "activation", "param", "DEFAULT_INIT"]
