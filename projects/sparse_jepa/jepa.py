"""The I-JEPA model as the trainer sees it: online encoder + predictor (+ head) and the EMA target.

The target encoder's weights are `TargetEncoderParam`s, an nnx.Variable that is not an nnx.Param:
the trainer splits the model by nnx.Param, so the optimiser, the gradient and the weight-decay mask
never see them, yet they sit in `state["model_state"]`, are checkpointed and sharded like their
online twins (same logical-axis metadata). `Task.after_update` moves them by EMA (`ema_target`).
"""
from __future__ import annotations

from typing import Any, Mapping

import jax.numpy as jnp
import ml_collections
from flax import nnx

import common  # noqa: F401  (no eager sharding: params carry logical names without a mesh)

from projects.sparse_jepa import model as model_lib
from projects.sparse_jepa.sparsity_head import SparsityConfig, SparsityHead

TARGET = "target_encoder"


class TargetEncoderParam(nnx.Variable):
  """A target-encoder weight: follows the online encoder by EMA, never by gradients."""


def as_target_encoder(encoder: nnx.Module) -> nnx.Module:
  """A copy of `encoder` whose nnx.Params are TargetEncoderParams (official: deepcopy, no grad).

  Frozen tables (the sin-cos FixedEmbed) keep their type: they are equal in both encoders.
  """
  target = nnx.clone(encoder)
  for _, module in nnx.iter_modules(target):
    for name, var in list(vars(module).items()):
      if isinstance(var, nnx.Param):
        setattr(module, name, TargetEncoderParam(var.get_value(), **var.get_metadata()))
  return target


class JEPA(nnx.Module):
  """encoder (online, trained), predictor, target_encoder (EMA), head (SparseJEPA only, or None)."""

  def __init__(self, encoder: nnx.Module, predictor: nnx.Module,
               head: SparsityHead | None = None):
    self.encoder = encoder
    self.predictor = predictor
    self.target_encoder = as_target_encoder(encoder)
    self.head = head


def _dtype(config, field: str):
  name = config.model.get(field, "float32")
  return {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}[name]


def sparsity_config(model_config: ml_collections.ConfigDict) -> SparsityConfig:
  """SparsityConfig from `config.model.sparsity` (a ValueError names a bad field)."""
  values = dict(model_config.sparsity.to_dict()) if "sparsity" in model_config else {}
  known = set(SparsityConfig.__dataclass_fields__)
  unknown = sorted(set(values) - known)
  if unknown:
    raise ValueError(f"config.model.sparsity has unknown field(s) {unknown}; allowed: "
                     f"{sorted(known)}.")
  return SparsityConfig(**values)


def encoder_sizes(model_config: ml_collections.ConfigDict) -> dict[str, Any]:
  """embed_dim, depth, num_heads, mlp_ratio: from an official preset, or the explicit fields."""
  name = model_config.encoder
  if name == "custom":
    return {k: model_config[k] for k in ("embed_dim", "depth", "num_heads", "mlp_ratio")}
  if name not in model_lib.VIT_PRESETS:
    raise ValueError(f"config.model.encoder={name!r}; allowed: 'custom' or "
                     f"{sorted(model_lib.VIT_PRESETS)}.")
  return {"mlp_ratio": 4.0, **model_lib.VIT_PRESETS[name]}


def build_jepa(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int],
               rngs: nnx.Rngs) -> JEPA:
  """The model of `config.model` for images of `image_shape` (H, W, C), H == W."""
  m = config.model
  h, w, c = image_shape
  if h != w:
    raise ValueError(f"config.data.image_size gives {h}x{w} images; allowed: square images.")
  kw = dict(dtype=_dtype(config, "dtype"), param_dtype=_dtype(config, "param_dtype"), rngs=rngs)
  sizes = encoder_sizes(m)
  encoder = model_lib.VisionTransformer(img_size=h, patch_size=m.patch_size, in_chans=c,
                                        **sizes, **kw)
  predictor = model_lib.VisionTransformerPredictor(
      num_patches=encoder.num_patches, embed_dim=sizes["embed_dim"],
      predictor_embed_dim=m.pred_emb_dim, depth=m.pred_depth, num_heads=sizes["num_heads"],
      mlp_ratio=sizes["mlp_ratio"], **kw)
  head = SparsityHead(sizes["embed_dim"], sparsity_config(m), **kw) if m.sparse else None
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
