"""Model factories: `config.model` -> a ViT classifier or a T5 encoder-decoder.

Both models come from common.layers; what is this project's own is the choice of MLP (ReLU,
optionally top-k per layer, or a dense GELU baseline) and the checks that turn bad config values
into errors naming the `config.model` field. Field meanings are documented in
configs/vit_mnist.py (ViT) and configs/t5_span.py (T5).
"""
from __future__ import annotations

from typing import Any

import ml_collections
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.layers import activations, dtypes, remat, t5, topk, validation, vit

MODELS = ("vit", "t5")


def _check_top_k(config: ml_collections.ConfigDict, depth: int, width_field: str) -> Any:
  """config.model.top_k: one int for all layers or a sequence with one per layer; 0 = off."""
  m = config.model
  width = m[width_field]
  top_k = m.top_k
  per_layer = validation.per_layer("config.model.top_k", top_k, depth)
  for k in per_layer:
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= width:
      raise ValueError(f"config.model.top_k={top_k!r}: each k must be an integer in "
                       f"[0, config.model.{width_field}={width}] (0 = top-k off).")
  if any(per_layer):
    validation.check_choice("config.model.topk_mode", m.topk_mode, topk.TOPK_MODES)
  return top_k if isinstance(top_k, int) else tuple(top_k)


def _check_common(config: ml_collections.ConfigDict) -> None:
  m = config.model
  validation.check_choice("config.model.mlp_activation", m.mlp_activation,
                          activations.ACTIVATIONS)
  validation.check_choice("config.model.remat_policy", m.remat_policy, remat.POLICIES)
  validation.check_rate("config.model.dropout_rate", m.dropout_rate)
  for field in ("dtype", "param_dtype"):
    dtypes.resolve_dtype(m[field], f"config.model.{field}")


def build_vit(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> vit.VisionTransformer:
  """ViT from config.model, with image_size, channels and num_classes from config.data."""
  m, d = config.model, config.data
  _check_common(config)
  for field in ("patch_size", "width", "depth", "num_heads", "mlp_dim"):
    validation.check_positive(f"config.model.{field}", m[field])
  if d.image_size % m.patch_size:
    raise ValueError(f"config.model.patch_size={m.patch_size} must divide "
                     f"config.data.image_size={d.image_size}.")
  validation.check_divides("config.model.width", m.width, "config.model.num_heads", m.num_heads)
  validation.check_choice("config.model.pool", m.pool, vit.POOLS)
  validation.check_choice("config.model.posemb", m.posemb, vit.POSEMBS)
  if m.posemb == "sincos2d" and m.width % 4:
    raise ValueError(f"config.model.posemb='sincos2d' needs config.model.width % 4 == 0; "
                     f"got width={m.width}.")
  top_k = _check_top_k(config, m.depth, "mlp_dim")
  return vit.VisionTransformer(
      image_size=d.image_size, patch_size=m.patch_size, channels=d.channels,
      num_classes=d.num_classes, width=m.width, depth=m.depth, num_heads=m.num_heads,
      mlp_dim=m.mlp_dim, mlp_activation=m.mlp_activation, top_k=top_k, topk_mode=m.topk_mode,
      pool=m.pool, posemb=m.posemb, dropout_rate=m.dropout_rate,
      attention_dropout_rate=m.attention_dropout_rate, head_zero_init=m.head_zero_init,
      remat_policy=m.remat_policy, sow_activations=m.sow_activations,
      dtype=dtypes.resolve_dtype(m.dtype), param_dtype=dtypes.resolve_dtype(m.param_dtype),
      rngs=rngs)


def build_t5(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> t5.T5EncoderDecoder:
  """T5 encoder-decoder from config.model."""
  m = config.model
  _check_common(config)
  for field in ("vocab_size", "d_model", "d_ff", "num_heads", "head_dim", "num_encoder_layers",
                "num_decoder_layers", "relative_buckets", "relative_max_distance"):
    validation.check_positive(f"config.model.{field}", m[field])
  top_k = _check_top_k(config, m.num_encoder_layers + m.num_decoder_layers, "d_ff")
  return t5.T5EncoderDecoder(
      vocab_size=m.vocab_size, d_model=m.d_model, d_ff=m.d_ff, num_heads=m.num_heads,
      head_dim=m.head_dim, num_encoder_layers=m.num_encoder_layers,
      num_decoder_layers=m.num_decoder_layers, activation=m.mlp_activation, top_k=top_k,
      topk_mode=m.topk_mode, dropout_rate=m.dropout_rate, relative_buckets=m.relative_buckets,
      relative_max_distance=m.relative_max_distance, tie_embeddings=m.tie_embeddings,
      remat_policy=m.remat_policy, sow_activations=m.sow_activations,
      dtype=dtypes.resolve_dtype(m.dtype), param_dtype=dtypes.resolve_dtype(m.param_dtype),
      rngs=rngs)


def build_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> nnx.Module:
  """Dispatches on config.model.name ('vit' | 't5')."""
  validation.check_choice("config.model.name", config.model.get("name"), MODELS)
  return {"vit": build_vit, "t5": build_t5}[config.model.name](config, rngs)
