"""Vision Transformer classifier (Dosovitskiy et al. 2021), laid out as big_vision's ViT.

patches -> linear embedding -> + position embedding -> [cls token] -> pre-LN blocks ->
LayerNorm -> pool ('cls': the class token; 'gap': mean over patch tokens) -> linear head.

Choices that follow big_vision (`big_vision/models/vit.py`): the position embedding is added to
the patch tokens only, before the class token is prepended; the head is zero-initialised;
LayerNorm eps 1e-6. Not implemented: stochastic depth, a pre-logits representation layer,
'map' (attention) pooling.

`top_k` may be one int for every layer or a sequence with one entry per layer (0 = off there).
The blocks live in `self.layers`, so their statistics are named 'layer_<i>'
(common.layers.intermediates).
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.layers import encoder_block, norms, patch_embed, position, remat, validation
from common.layers.dropout import Dropout
from common.layers.linear import Linear

POOLS = ("cls", "gap")
POSEMBS = ("learn", "sincos2d")


class VisionTransformer(nnx.Module):
  """[B, H, W, C] images -> [B, num_classes] float32 logits."""

  def __init__(self, *, image_size: int | tuple[int, int], patch_size: int, channels: int,
               num_classes: int, width: int, depth: int, num_heads: int, mlp_dim: int,
               mlp_activation: str = "gelu", top_k: int | Sequence[int] = 0,
               topk_mode: str = "threshold", pool: str = "cls", posemb: str = "learn",
               dropout_rate: float = 0.0, attention_dropout_rate: float = 0.0,
               head_zero_init: bool = True, remat_policy: str = "none",
               sow_activations: bool = False, dtype: Any = None, param_dtype: Any = jnp.float32,
               rngs: nnx.Rngs):
    validation.check_choice("pool", pool, POOLS)
    validation.check_choice("posemb", posemb, POSEMBS)
    validation.check_positive("depth", depth)
    validation.check_positive("num_classes", num_classes)
    remat.checkpoint_policy(remat_policy)  # validates the name
    top_ks = validation.per_layer("top_k", top_k, depth)
    self.pool = pool
    self.posemb_kind = posemb
    self.remat_policy = remat_policy
    self.dtype = dtype
    self.patch_embed = patch_embed.PatchEmbed(image_size, patch_size, channels, width,
                                              dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.grid = self.patch_embed.grid
    self.posemb = (position.LearnedPositionEmbedding(self.patch_embed.num_patches, width,
                                                     param_dtype=param_dtype, rngs=rngs)
                   if posemb == "learn" else None)
    if posemb == "sincos2d":
      position.sincos_2d(*self.grid, width)  # validates width % 4 now
    self.cls_token = (nnx.Param(nnx.with_partitioning(nnx.initializers.zeros,
                                                      (None, None, "embed"))(
                                                          None, (1, 1, width), param_dtype))
                      if pool == "cls" else None)
    self.layers = nnx.List([
        encoder_block.PreLNEncoderBlock(
            width, num_heads, mlp_dim, activation=mlp_activation, top_k=k, topk_mode=topk_mode,
            dropout_rate=dropout_rate, attention_dropout_rate=attention_dropout_rate,
            sow_activations=sow_activations, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        for k in top_ks])
    self.norm = norms.LayerNorm(width, dtype=dtype, param_dtype=param_dtype)
    head_init = nnx.initializers.zeros if head_zero_init else nnx.initializers.lecun_normal()
    self.head = Linear(width, num_classes, kernel_axes=("embed", None), kernel_init=head_init,
                       bias_init=nnx.initializers.zeros, dtype=dtype, param_dtype=param_dtype,
                       rngs=rngs)
    self.dropout = Dropout(dropout_rate)

  def embed(self, images: jax.Array, *, train: bool = False,
            rngs: nnx.Rngs | None = None) -> jax.Array:
    """The pooled, normalised representation [B, width] (the input of the head)."""
    x = self.patch_embed(images.astype(self.dtype or images.dtype))
    if self.posemb is not None:
      x = self.posemb(x)
    else:
      x = x + jnp.asarray(position.sincos_2d(*self.grid, x.shape[-1]), x.dtype)
    if self.cls_token is not None:
      cls = jnp.broadcast_to(self.cls_token[...].astype(x.dtype), (x.shape[0], 1, x.shape[-1]))
      x = jnp.concatenate([cls, x], axis=1)
    x = self.dropout(x, train=train, rngs=rngs)

    def apply_block(block, x, rngs):
      return block(x, train=train, rngs=rngs)

    apply_block = remat.remat(apply_block, self.remat_policy)
    for block in self.layers:
      x = apply_block(block, x, rngs)
    x = self.norm(x)
    return x[:, 0] if self.pool == "cls" else jnp.mean(x, axis=1)

  def __call__(self, images: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """train: dropout on (with rates > 0, `rngs` must hold a 'dropout' stream)."""
    x = self.embed(images, train=train, rngs=rngs)
    return self.head(x).astype(jnp.float32)
