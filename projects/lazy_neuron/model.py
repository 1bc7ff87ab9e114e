"""Model factories: a checked `config.model` (projects/lazy_neuron/config.py) -> a ViT classifier
(common.layers.vit) or a T5 encoder-decoder (projects/lazy_neuron/t5.py).

What is this project's own is the choice of MLP (ReLU, optionally top-k per layer, or a dense
GELU baseline); the field checks live in config.py, the one check that needs the data config
(patch size against image size) here.
"""
from __future__ import annotations

import ml_collections
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.layers import vit
from projects.lazy_neuron import t5
from projects.lazy_neuron.config import T5Config, ViTConfig, from_config


def check_data(cfg: ViTConfig | T5Config, data: ml_collections.ConfigDict) -> None:
  """The checks of config.model that need config.data (the ViT's patch size)."""
  if isinstance(cfg, ViTConfig) and data.image_size % cfg.patch_size:
    raise ValueError(f"config.model.patch_size={cfg.patch_size} must divide "
                     f"config.data.image_size={data.image_size}.")


def build_vit(cfg: ViTConfig, data: ml_collections.ConfigDict,
              rngs: nnx.Rngs) -> vit.VisionTransformer:
  """ViT from `cfg`, with image_size, channels and num_classes from the data config."""
  check_data(cfg, data)
  return vit.VisionTransformer(
      image_size=data.image_size, patch_size=cfg.patch_size, channels=data.channels,
      num_classes=data.num_classes, width=cfg.width, depth=cfg.depth, num_heads=cfg.num_heads,
      mlp_dim=cfg.mlp_dim, mlp_activation=cfg.mlp_activation, top_k=cfg.top_k,
      topk_mode=cfg.topk_mode, pool=cfg.pool, posemb=cfg.posemb, dropout_rate=cfg.dropout_rate,
      attention_dropout_rate=cfg.attention_dropout_rate, head_zero_init=cfg.head_zero_init,
      remat_policy=cfg.remat_policy, sow_activations=cfg.sow_activations, dtype=cfg.dtype,
      param_dtype=cfg.param_dtype, rngs=rngs)


def build_t5(cfg: T5Config, rngs: nnx.Rngs) -> t5.T5EncoderDecoder:
  """T5 encoder-decoder from `cfg`."""
  return t5.T5EncoderDecoder(
      vocab_size=cfg.vocab_size, d_model=cfg.d_model, d_ff=cfg.d_ff, num_heads=cfg.num_heads,
      head_dim=cfg.head_dim, num_encoder_layers=cfg.num_encoder_layers,
      num_decoder_layers=cfg.num_decoder_layers, activation=cfg.mlp_activation, top_k=cfg.top_k,
      topk_mode=cfg.topk_mode, dropout_rate=cfg.dropout_rate,
      relative_buckets=cfg.relative_buckets, relative_max_distance=cfg.relative_max_distance,
      tie_embeddings=cfg.tie_embeddings, remat_policy=cfg.remat_policy,
      sow_activations=cfg.sow_activations, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
      rngs=rngs)


def build_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> nnx.Module:
  """config.model.name 'vit' | 't5' -> the model (config.model checked first)."""
  cfg = from_config(config.model)
  if isinstance(cfg, ViTConfig):
    return build_vit(cfg, config.data, rngs)
  return build_t5(cfg, rngs)
