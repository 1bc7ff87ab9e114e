"""I-JEPA encoder and predictor ViTs (the forward of a training step is losses.ijepa_forward).

Official: facebookresearch/ijepa@52c1ae95 src/models/vision_transformer.py (VisionTransformer,
VisionTransformerPredictor, vit_* recipes) and src/train.py L295-319 (the forward of one step).
Images are NHWC here (the official code is NCHW); patches are numbered row-major, as the official
`proj(x).flatten(2)` does, so mask indices mean the same patches in both.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

import common  # noqa: F401  (no eager sharding: params carry logical names without a mesh)
from common.layers import remat
from common.layers.conv import Conv2d
from common.layers.initializers import trunc_normal
from common.layers.keys import param
from projects.sparse_jepa import vit_block
from projects.sparse_jepa.config import VIT_PRESETS
from projects.sparse_jepa.pos_embed import sincos_2d
from projects.sparse_jepa.tensors import Masks, apply_masks, repeat_interleave_batch, stack_masks


class FixedEmbed(nnx.Variable):
  """A frozen table (the official sin-cos pos-embeds have requires_grad=False): not an nnx.Param,
  so optimisers and the weight-decay mask never see it, but it is saved and converted."""


def _fixed_pos_embed(dim: int, grid: int) -> FixedEmbed:
  return FixedEmbed(jnp.asarray(sincos_2d(dim, grid))[None], sharding_names=(None, None, "embed"))


def _positive(name: str, value, allowed: str = "a positive integer"):
  if not isinstance(value, int) or value <= 0:
    raise ValueError(f"{name}={value!r}; allowed: {allowed}.")


def _run_blocks(blocks, x: jax.Array, remat_policy: str) -> jax.Array:
  """The blocks in order, each rematerialised by `remat_policy` (common.layers.remat)."""
  call = remat.remat(lambda blk, x: blk(x), remat_policy)
  for blk in blocks:
    x = call(blk, x)
  return x


class VisionTransformer(nnx.Module):
  """The I-JEPA context / target encoder.

  Args:
    img_size: square input side in pixels (official `img_size=[crop]`).
    patch_size: patch side; img_size must be a multiple of it.
    in_chans: image channels.
    embed_dim, depth, num_heads, mlp_ratio, qkv_bias: transformer sizes (see VIT_PRESETS).
    norm_eps: LayerNorm eps of blocks and final norm (official recipes: 1e-6).
    init_std: std of the official trunc_normal init of Linear/Conv weights.
    dtype: compute dtype (None: float32 from the params); param_dtype: parameter dtype.
    remat_policy: activation rematerialisation per block (common.layers.remat.POLICIES).

  Call: `encoder(x, masks=None)` with x (B, img, img, in_chans); masks a list of M (B, K) patch
  index arrays or a (M, B, K) array. Returns (B, N, D) without masks, else (M*B, K, D).
  """

  def __init__(self, *, img_size: int = 224, patch_size: int = 16, in_chans: int = 3,
               embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
               mlp_ratio: float = 4.0, qkv_bias: bool = True, norm_eps: float = 1e-6,
               init_std: float = 0.02, dtype=None, param_dtype=jnp.float32,
               remat_policy: str = "none", rngs: nnx.Rngs):
    remat.checkpoint_policy(remat_policy)  # validates the name now
    for name, value in (("img_size", img_size), ("patch_size", patch_size),
                        ("in_chans", in_chans), ("embed_dim", embed_dim), ("depth", depth),
                        ("num_heads", num_heads)):
      _positive(name, value)
    if img_size % patch_size:
      raise ValueError(f"img_size={img_size} is not a multiple of patch_size={patch_size}.")
    self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
    self.grid = img_size // patch_size
    self.num_patches = self.grid**2
    self.embed_dim, self.num_heads = embed_dim, num_heads
    self.remat_policy = remat_policy
    self.patch_embed = Conv2d(
        in_chans, embed_dim, patch_size, stride=patch_size, padding=0,
        kernel_axes=(None, None, None, "embed"), kernel_init=trunc_normal(init_std),
        bias_init=nnx.initializers.zeros, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.pos_embed = _fixed_pos_embed(embed_dim, self.grid)
    self.blocks = nnx.List([
        vit_block.Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                        norm_eps=norm_eps, init_std=init_std, dtype=dtype,
                        param_dtype=param_dtype, rngs=rngs) for _ in range(depth)])
    self.norm = vit_block.layer_norm(embed_dim, norm_eps, dtype=dtype, param_dtype=param_dtype)

  def __call__(self, x: jax.Array, masks: Masks | None = None) -> jax.Array:
    want = (self.img_size, self.img_size, self.in_chans)
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
      # The official interpolate_pos_encoding assumes a cls token this model does not have, so a
      # different size would be silently wrong there; refuse it here.
      raise ValueError(f"images have shape {x.shape}; allowed: (B, {want[0]}, {want[1]}, "
                       f"{want[2]}) NHWC.")
    x = self.patch_embed(x)
    x = x.reshape(x.shape[0], self.num_patches, self.embed_dim)
    x = x + self.pos_embed[...].astype(x.dtype)
    if masks is not None:
      x = apply_masks(x, masks)
    return self.norm(_run_blocks(self.blocks, x, self.remat_policy))


class VisionTransformerPredictor(nnx.Module):
  """The I-JEPA predictor (official VisionTransformerPredictor via vit_predictor).

  Args:
    num_patches: patches of the (square) grid; must be a perfect square.
    embed_dim: encoder width (input and output); predictor_embed_dim: internal width.
    depth, num_heads, mlp_ratio, qkv_bias, norm_eps, init_std, dtype, param_dtype,
      remat_policy: as the encoder (official init_model passes the encoder's num_heads).

  Call: `predictor(x, masks_x, masks)` with x the encoder output on the context masks
  ((nenc*B, Kc, D)), masks_x the nenc context index arrays and masks the npred target index arrays
  (each (B, K)). Returns (npred*nenc*B, Kp, D), rows ordered target block, context block, batch.
  """

  def __init__(self, *, num_patches: int, embed_dim: int = 768, predictor_embed_dim: int = 384,
               depth: int = 6, num_heads: int = 12, mlp_ratio: float = 4.0,
               qkv_bias: bool = True, norm_eps: float = 1e-6, init_std: float = 0.02,
               dtype=None, param_dtype=jnp.float32, remat_policy: str = "none",
               rngs: nnx.Rngs):
    remat.checkpoint_policy(remat_policy)  # validates the name now
    for name, value in (("num_patches", num_patches), ("embed_dim", embed_dim),
                        ("predictor_embed_dim", predictor_embed_dim), ("depth", depth),
                        ("num_heads", num_heads)):
      _positive(name, value)
    grid = int(round(num_patches**0.5))
    if grid * grid != num_patches:
      raise ValueError(f"num_patches={num_patches} is not a perfect square; the sin-cos table "
                       "is built for a square grid (official int(num_patches**.5)).")
    self.embed_dim, self.predictor_embed_dim = embed_dim, predictor_embed_dim
    self.remat_policy = remat_policy
    kw = dict(dtype=dtype, param_dtype=param_dtype)
    self.predictor_embed = vit_block.dense(embed_dim, predictor_embed_dim, (None, "embed"),
                                           init_std=init_std, rngs=rngs, **kw)
    self.mask_token = param(trunc_normal(init_std), (None, None, "embed"), rngs,
                            (1, 1, predictor_embed_dim), param_dtype)
    self.predictor_pos_embed = _fixed_pos_embed(predictor_embed_dim, grid)
    self.predictor_blocks = nnx.List([
        vit_block.Block(predictor_embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                        norm_eps=norm_eps, init_std=init_std, rngs=rngs, **kw)
        for _ in range(depth)])
    self.predictor_norm = vit_block.layer_norm(predictor_embed_dim, norm_eps, **kw)
    self.predictor_proj = vit_block.dense(predictor_embed_dim, embed_dim, ("embed", None),
                                          init_std=init_std, rngs=rngs, **kw)

  def __call__(self, x: jax.Array, masks_x: Masks, masks: Masks) -> jax.Array:
    masks_x, masks = stack_masks(masks_x), stack_masks(masks)
    nenc, npred = masks_x.shape[0], masks.shape[0]
    batch = x.shape[0] // nenc
    if batch * nenc != x.shape[0] or masks_x.shape[1] != batch or masks.shape[1] != batch:
      raise ValueError(f"x has {x.shape[0]} rows; expected nenc*B with nenc={nenc} context masks "
                       f"of shape {masks_x.shape[1:]} and target masks of shape "
                       f"{masks.shape[1:]} (B, K).")
    x = self.predictor_embed(x)
    pos = jnp.broadcast_to(self.predictor_pos_embed[...].astype(x.dtype),
                           (batch, *self.predictor_pos_embed.shape[1:]))
    x = x + apply_masks(pos, masks_x)
    n_ctxt = x.shape[1]
    pos_t = repeat_interleave_batch(apply_masks(pos, masks), batch, repeat=nenc)
    pred_tokens = self.mask_token[...].astype(x.dtype) + pos_t
    # torch `x.repeat(len(masks), 1, 1)` tiles the whole context batch npred times.
    x = jnp.tile(x, (npred, 1, 1))
    x = jnp.concatenate([x, pred_tokens], axis=1)
    x = self.predictor_norm(_run_blocks(self.predictor_blocks, x, self.remat_policy))
    return self.predictor_proj(x[:, n_ctxt:])


def vit_encoder(name: str = "vit_base", **overrides) -> VisionTransformer:
  """Builds an official vit_* recipe; `overrides` set any VisionTransformer field (incl. rngs)."""
  if name not in VIT_PRESETS:
    raise ValueError(f"model name {name!r}; allowed: {sorted(VIT_PRESETS)}.")
  return VisionTransformer(**{**VIT_PRESETS[name], **overrides})
