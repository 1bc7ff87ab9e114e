"""Pre-LN ViT block pieces of the official I-JEPA ViT (src/models/vision_transformer.py L106-177).

Generic enough to move to common/layers later (a plain pre-LN block with exact GELU). Dropout and
drop-path are not implemented: every official I-JEPA config leaves them at 0.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from projects.sparse_jepa.tensors import trunc_normal


def dense(in_features: int, out_features: int, axes: tuple, *, init_std: float, dtype,
          param_dtype, rngs: nnx.Rngs, use_bias: bool = True) -> nnx.Linear:
  """nn.Linear with the official init (trunc_normal weight, zero bias; src/helper.py L86-93)."""
  return nnx.Linear(
      in_features, out_features, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
      kernel_init=nnx.with_partitioning(trunc_normal(init_std), axes),
      bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (axes[1],)), rngs=rngs)


def layer_norm(dim: int, eps: float, *, dtype, param_dtype, rngs: nnx.Rngs) -> nnx.LayerNorm:
  """nn.LayerNorm(dim, eps) with affine (1, 0) init; two-pass variance as torch computes it."""
  return nnx.LayerNorm(
      dim, epsilon=eps, dtype=dtype, param_dtype=param_dtype, use_fast_variance=False,
      scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("embed",)),
      bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("embed",)), rngs=rngs)


class MLP(nnx.Module):
  """fc1 -> exact (erf) GELU -> fc2, as torch nn.GELU() defaults to."""

  def __init__(self, dim: int, hidden: int, *, init_std: float = 0.02, dtype=None,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    kw = dict(init_std=init_std, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.fc1 = dense(dim, hidden, ("embed", "mlp"), **kw)
    self.fc2 = dense(hidden, dim, ("mlp", "embed"), **kw)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))


class Attention(nnx.Module):
  """Multi-head self-attention; softmax((q k^T) * head_dim**-0.5) v, then the output projection.

  The official fused qkv Linear(D, 3D) is kept as three Linear(D, D) (q, k, v) so that each output
  is head-major and shards cleanly on 'heads'; the converter splits the fused weight in thirds
  (official reshape (B, N, 3, H, D/H), vision_transformer.py L137).
  """

  def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True, init_std: float = 0.02,
               dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
    if dim % num_heads:
      raise ValueError(f"embed dim {dim} is not divisible by num_heads={num_heads}.")
    self.num_heads = num_heads
    self.head_dim = dim // num_heads
    self.dtype = dtype
    kw = dict(init_std=init_std, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.q, self.k, self.v = (dense(dim, dim, ("embed", "heads"), use_bias=qkv_bias, **kw)
                              for _ in range(3))
    self.proj = dense(dim, dim, ("heads", "embed"), **kw)

  def __call__(self, x: jax.Array) -> jax.Array:
    b, n, d = x.shape
    split = lambda t: t.reshape(b, n, self.num_heads, self.head_dim)
    q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
    # Official order: matmul first, then scale (vision_transformer.py L140).
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * (self.head_dim**-0.5)
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
    out = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, n, d)
    return self.proj(out)


class Block(nnx.Module):
  """x + attn(norm1(x)); x + mlp(norm2(x)) with LayerNorm eps 1e-6 (official vit_* recipes)."""

  def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0, qkv_bias: bool = True,
               norm_eps: float = 1e-6, init_std: float = 0.02, dtype=None,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.norm1 = layer_norm(dim, norm_eps, **kw)
    self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, init_std=init_std, **kw)
    self.norm2 = layer_norm(dim, norm_eps, **kw)
    # Official: int(dim * mlp_ratio) (vision_transformer.py L163).
    self.mlp = MLP(dim, int(dim * mlp_ratio), init_std=init_std, **kw)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x + self.attn(self.norm1(x))
    return x + self.mlp(self.norm2(x))
