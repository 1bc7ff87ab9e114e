"""The pre-LN ViT block of the official I-JEPA ViT (src/models/vision_transformer.py L106-177).

Linear, LayerNorm and the MLP are common/layers' (torch numerics, the official trunc-normal init);
what is I-JEPA's own is the attention's order of operations and the block wiring. Dropout and
drop path are absent: every official I-JEPA config leaves them at 0.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

from common.layers.initializers import trunc_normal
from common.layers.linear import Linear
from common.layers.mlp import Mlp
from common.layers.norms import LayerNorm


def dense(in_features: int, out_features: int, axes: tuple, *, init_std: float, dtype,
          param_dtype, rngs, use_bias: bool = True) -> Linear:
  """nn.Linear with the official init (trunc_normal weight, zero bias; src/helper.py L86-93)."""
  return Linear(in_features, out_features, use_bias=use_bias, kernel_axes=axes,
                kernel_init=trunc_normal(init_std), bias_init=nnx.initializers.zeros,
                dtype=dtype, param_dtype=param_dtype, rngs=rngs)


def layer_norm(dim: int, eps: float, *, dtype, param_dtype, rngs=None) -> LayerNorm:
  """nn.LayerNorm(dim, eps) with affine (1, 0) init; two-pass variance as torch computes it."""
  return LayerNorm(dim, epsilon=eps, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


class Attention(nnx.Module):
  """Multi-head self-attention; softmax((q k^T) * head_dim**-0.5) v, then the output projection.

  The official fused qkv Linear(D, 3D) is kept as three Linear(D, D) (q, k, v) so that each output
  is head-major and shards cleanly on 'heads'; the converter splits the fused weight in thirds
  (official reshape (B, N, 3, H, D/H), vision_transformer.py L137).
  """

  def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True, init_std: float = 0.02,
               dtype=None, param_dtype=jnp.float32, rngs):
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
    # Named so the 'save_block_outputs' remat policy can keep it (common.layers.remat).
    return checkpoint_name(self.proj(out), "attn_out")


class Block(nnx.Module):
  """x + attn(norm1(x)); x + mlp(norm2(x)) with LayerNorm eps 1e-6 (official vit_* recipes)."""

  def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0, qkv_bias: bool = True,
               norm_eps: float = 1e-6, init_std: float = 0.02, dtype=None,
               param_dtype=jnp.float32, rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype)
    self.norm1 = layer_norm(dim, norm_eps, **kw)
    self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, init_std=init_std, rngs=rngs, **kw)
    self.norm2 = layer_norm(dim, norm_eps, **kw)
    # Official: fc1 -> exact (erf) GELU -> fc2, hidden int(dim * mlp_ratio) (L163).
    self.mlp = Mlp(dim, int(dim * mlp_ratio), activation="gelu",
                   layer_names=("fc1", "fc1_gate", "fc2"), kernel_init=trunc_normal(init_std),
                   bias_init=nnx.initializers.zeros, sow_stats=False, rngs=rngs, **kw)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x + self.attn(self.norm1(x))
    return x + self.mlp(self.norm2(x))
