"""The I-JEPA model as the trainer sees it: online encoder + predictor (+ head) and the EMA target.

The target encoder's weights are `TargetEncoderParam`s, an nnx.Variable that is not an nnx.Param:
the trainer splits the model by nnx.Param, so the optimiser, the gradient and the weight-decay mask
never see them, yet they sit in `state["model_state"]`, are checkpointed and sharded like their
online twins (same logical-axis metadata). `Task.after_update` moves them by EMA (`ema_target`).
"""
from __future__ import annotations

from typing import Any, Mapping

import ml_collections
from flax import nnx

import common  # noqa: F401  (no eager sharding: params carry logical names without a mesh)
from common.layers import variables

from projects.sparse_jepa import config as config_lib
from projects.sparse_jepa import model as model_lib
from projects.sparse_jepa.sparsity_head import SparsityHead

TARGET = "target_encoder"


class TargetEncoderParam(nnx.Variable):
  """A target-encoder weight: follows the online encoder by EMA, never by gradients."""


def as_target_encoder(encoder: nnx.Module) -> nnx.Module:
  """A copy of `encoder` whose nnx.Params are TargetEncoderParams (official: deepcopy, no grad).

  Frozen tables (the sin-cos FixedEmbed) keep their type: they are equal in both encoders.
  """
  return variables.params_as(encoder, TargetEncoderParam)


class JEPA(nnx.Module):
  """encoder (online, trained), predictor, target_encoder (EMA), head (SparseJEPA only, or None)."""

  def __init__(self, encoder: nnx.Module, predictor: nnx.Module,
               head: SparsityHead | None = None):
    self.encoder = encoder
    self.predictor = predictor
    self.target_encoder = as_target_encoder(encoder)
    self.head = head


def build_jepa(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int],
               rngs: nnx.Rngs) -> JEPA:
  """The model of `config.model` (config.from_config) for images of `image_shape` (H, W, C)."""
  m = config_lib.from_config(config.model)
  h, w, c = image_shape
  if h != w:
    raise ValueError(f"config.data.image_size gives {h}x{w} images; allowed: square images.")
  kw = dict(dtype=m.dtype, param_dtype=m.param_dtype, rngs=rngs)
  vit = dict(embed_dim=m.embed_dim, num_heads=m.num_heads, mlp_ratio=m.mlp_ratio,
             remat_policy=m.remat_policy, **kw)
  encoder = model_lib.VisionTransformer(img_size=h, patch_size=m.patch_size, in_chans=c,
                                        depth=m.depth, **vit)
  predictor = model_lib.VisionTransformerPredictor(
      num_patches=encoder.num_patches, predictor_embed_dim=m.pred_emb_dim, depth=m.pred_depth,
      **vit)
  head = SparsityHead(m.embed_dim, m.sparsity, **kw) if m.sparse else None
  return JEPA(encoder, predictor, head)


def ema_target(target: Mapping[str, Any], online: Mapping[str, Any], momentum) -> dict:
  """theta_bar <- m theta_bar + (1 - m) theta for every leaf of `online` (pure dicts).

  Leaves of `target` that `online` lacks (the frozen sin-cos tables, which live in model_state on
  both sides) are returned unchanged.
  """
  out = dict(target)
  for key, value in online.items():
    if key not in target:
      raise ValueError(f"online encoder leaf {key!r} has no target-encoder twin (target keys "
                       f"{sorted(target)}); the two encoders must share one structure.")
    if isinstance(value, Mapping):
      out[key] = ema_target(target[key], value, momentum)
    else:
      t = target[key]
      out[key] = (momentum * t + (1.0 - momentum) * value).astype(t.dtype)
  return out
