"""The Routing Transformer's model config: the dataclass, the official presets, `from_config`.

Presets are the official hparam sets (TF `sparse_transformer.py`, `sparse_image_transformer.py`;
spec §1.5) under their names; their sequence lengths and weight decays, which are not model
fields, live in configs/paper.py. Settings that the official sets share
(`sparse_transformer_local`): share_qk, EMA k-means with decay 0.999, beta 1e-4,
uniform_unit_scaling init with gain 0.2, query block 256 with a 256 memory flange, Shaw relative
positions up to 513 (text only). These are the dataclass defaults.

config.model fields (every field of `RoutingTransformerConfig`):
  vocab_size, embedding_dims, hidden_size   embedding rows / width, model width
  num_layers, filter_size, ffn              depth; FFN width; 'geglu' (text) | 'relu' (images)
  num_local_heads, num_routing_heads        heads per layer (routing heads come first)
  skip_first                                layers [0, skip_first) have only local heads
  num_clusters, window                      K centroids per routing head; w tokens per cluster
  query_block, memory_flange                local heads: block size, look-back (multiple of it)
  local_relative, routing_relative, max_relative_position   Shaw relative positions (513)
  routing_mask_self, routing_scale_logits   routing heads: a query does not attend to itself
                                            (unless first in its window) / logits * d^-1/2;
                                            both False = the official TF numerics; both True =
                                            lucidrains' (routing_attention.py; the README's
                                            recall result needs both)
  attention_dropout, relu_dropout, embedding_dropout, residual_dropout, target_dropout
  kmeans_decay (0.999), beta (1e-4)         k-means EMA decay; commitment loss weight
  initializer_gain                          uniform_unit_scaling gain (0.2)
  positions, image_shape                    'none' (text: relative positions only) |
                                            'sinusoidal' | 'learned_nd' with (H, W, C) for the
                                            pixel LM (input_embedding.py)
  attention_impl   'official': every head on the windowed jnp path of the official code (Shaw
                   relative positions, attention dropout); or a common.kernels impl for
                   `block_sparse_attention`, handed to it unchanged (Shaw relative positions
                   run inside the kernel): 'auto' (default; a train step with attention
                   dropout falls back to 'official', which the kernel cannot express) | 'xla' |
                   'reference' | 'pallas_tpu' | 'pallas_gpu' | 'interpret' (these refuse
                   attention_dropout > 0)
  dtype, param_dtype, remat_policy          compute / parameter dtype; per-block remat
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import ml_collections

from common import config_contract
from common.kernels import dispatch
from common.layers import validation

OFFICIAL = "official"
ATTENTION_IMPLS = (OFFICIAL,) + dispatch.IMPLS
FFNS = ("geglu", "relu")
POSITIONS = ("none", "sinusoidal", "learned_nd")
PIXEL_VALUES = 256  # TF get_channel_embeddings: 256 intensities per channel


@dataclasses.dataclass(frozen=True)
class RoutingTransformerConfig(config_contract.ModelFields):
  """One Routing Transformer LM; the defaults are the official shared settings (text body).

  dtype, param_dtype and remat_policy come from config_contract.ModelFields (dtype None here:
  promoted from the inputs and parameters)."""
  vocab_size: int = 258
  embedding_dims: int = 256
  hidden_size: int = 1024
  num_layers: int = 14
  filter_size: int = 3072
  ffn: str = "geglu"
  num_local_heads: int = 8
  num_routing_heads: int = 8
  skip_first: int = 0
  num_clusters: int = 8
  window: int = 512
  query_block: int = 256
  memory_flange: int = 256
  local_relative: bool = True
  routing_relative: bool = True
  max_relative_position: int = 513
  routing_mask_self: bool = False
  routing_scale_logits: bool = False
  attention_dropout: float = 0.0
  relu_dropout: float = 0.0
  embedding_dropout: float = 0.0
  residual_dropout: float = 0.1
  target_dropout: float = 0.0
  kmeans_decay: float = 0.999
  beta: float = 1e-4
  initializer_gain: float = 0.2
  positions: str = "none"
  image_shape: tuple[int, ...] = ()
  attention_impl: str = "auto"
  dtype: Any = None

  def __post_init__(self):
    super().__post_init__()
    for name in ("vocab_size", "embedding_dims", "hidden_size", "num_layers", "filter_size"):
      validation.check_positive(name, getattr(self, name))
    for name in ("num_local_heads", "num_routing_heads", "skip_first", "memory_flange",
                 "max_relative_position"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}={value!r} must be a non-negative integer.")
    for name in ("attention_dropout", "relu_dropout", "embedding_dropout", "residual_dropout",
                 "target_dropout"):
      validation.check_rate(name, getattr(self, name))
    validation.check_choice("ffn", self.ffn, FFNS)
    validation.check_choice("attention_impl", self.attention_impl, ATTENTION_IMPLS)
    validation.check_positive("num_local_heads + num_routing_heads", self.num_heads)
    validation.check_divides("hidden_size", self.hidden_size,
                             "num_local_heads + num_routing_heads", self.num_heads)
    self._check_inputs()
    if self.uses_routing:
      validation.check_positive("num_clusters", self.num_clusters)
      validation.check_positive("window", self.window)
      if not 0.0 < self.kmeans_decay < 1.0:
        raise ValueError(f"kmeans_decay={self.kmeans_decay} must lie in (0, 1).")
    if self.attention_impl not in ("auto", OFFICIAL) and self.attention_dropout:
      raise ValueError(f"attention_impl={self.attention_impl!r} cannot express attention dropout "
                       f"(attention_dropout={self.attention_dropout}; the kernel has none); use "
                       "'auto' (the kernel where it can, 'official' in train steps with dropout) "
                       "or 'official', or attention_dropout=0.")
    if (self.attention_impl not in ("auto", OFFICIAL) and self.routing_mask_self
        and self.routing_relative and self.uses_routing):
      raise ValueError(f"attention_impl={self.attention_impl!r} cannot express routing_mask_self "
                       "with routing_relative (the kernel's self mask shifts the relative "
                       "distance); use 'auto' or 'official', or routing_relative=False.")

  def _check_inputs(self):
    validation.check_choice("positions", self.positions, POSITIONS)
    shape = tuple(self.image_shape)
    if self.positions != "learned_nd":
      if shape:
        raise ValueError(f"image_shape={shape} is only read with positions='learned_nd' (the "
                         "pixel LM); set positions='learned_nd' or image_shape=().")
      return
    if len(shape) != 3 or any(not isinstance(s, int) or s <= 0 for s in shape):
      raise ValueError(f"image_shape={shape!r} must be (height, width, channels) of positive "
                       "ints for positions='learned_nd'.")
    if self.vocab_size != PIXEL_VALUES:
      raise ValueError(f"vocab_size={self.vocab_size} must be {PIXEL_VALUES} for the pixel LM "
                       "(one class per intensity).")
    if self.embedding_dims != self.hidden_size:
      raise ValueError(f"embedding_dims={self.embedding_dims} must equal hidden_size="
                       f"{self.hidden_size} for the pixel LM (TF embeds pixels at the model "
                       "width).")

  @property
  def num_heads(self) -> int:
    return self.num_local_heads + self.num_routing_heads

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @property
  def uses_routing(self) -> bool:
    """Some layer has routing heads (layers below skip_first have only local ones)."""
    return bool(self.num_routing_heads) and self.skip_first < self.num_layers

  @property
  def uses_local(self) -> bool:
    return bool(self.num_local_heads) or (self.skip_first > 0 and bool(self.num_routing_heads))


MODEL_FIELDS = config_contract.dataclass_fields(RoutingTransformerConfig)
IMAGE_PRESETS = ("imagenet64", "cifar10")


def _preset(**fields) -> RoutingTransformerConfig:
  return RoutingTransformerConfig(**fields)


PRESETS: dict[str, RoutingTransformerConfig] = {
    # WT103, n=4096: 14 layers, 1024 wide, emb 256, 8 local + 8 routing heads, K=8, w=512.
    "wikitext103_4k": _preset(
        num_layers=14, hidden_size=1024, embedding_dims=256, filter_size=3072,
        num_local_heads=8, num_routing_heads=8, num_clusters=8, window=512,
        attention_dropout=0.4, relu_dropout=0.4, embedding_dropout=0.4, target_dropout=0.25),
    "wikitext103_1k": _preset(
        num_layers=20, hidden_size=1024, embedding_dims=256, filter_size=3072,
        num_local_heads=8, num_routing_heads=8, num_clusters=2, window=512,
        attention_dropout=0.4, relu_dropout=0.4, embedding_dropout=0.4, target_dropout=0.2),
    # Released RT-base (README): routing only in the last of 22 layers (skip_first 21).
    "pg19_8k": _preset(
        num_layers=22, hidden_size=1032, embedding_dims=1032, filter_size=4096,
        num_local_heads=6, num_routing_heads=2, num_clusters=16, window=512, skip_first=21),
    "enwik8_8k": _preset(
        num_layers=12, hidden_size=1024, embedding_dims=1024, filter_size=3072,
        num_local_heads=4, num_routing_heads=4, num_clusters=16, window=512),
    # Pixel LMs (imagenet_local_cluster, cifar10_local_cluster): relu FFN with biases, no
    # relative positions, residual dropout 0.3 ("dan"), hparams.dropout 0, per-channel pixel
    # embeddings + learned n-d positions (add_positional_emb True), 256 intensities.
    "imagenet64": _preset(
        num_layers=24, hidden_size=1024, embedding_dims=1024, filter_size=2048, ffn="relu",
        num_local_heads=12, num_routing_heads=4, num_clusters=8, window=2048,
        local_relative=False, routing_relative=False, max_relative_position=0,
        residual_dropout=0.3, vocab_size=256, positions="learned_nd", image_shape=(64, 64, 3)),
    "cifar10": _preset(
        num_layers=12, hidden_size=1024, embedding_dims=1024, filter_size=2048, ffn="relu",
        num_local_heads=4, num_routing_heads=4, num_clusters=6, window=512,
        local_relative=False, routing_relative=False, max_relative_position=0,
        residual_dropout=0.3, vocab_size=256, positions="learned_nd", image_shape=(32, 32, 3)),
}


def model_fields(cfg: RoutingTransformerConfig | None = None) -> dict[str, Any]:
  """config.model values of `cfg` (default: the official shared settings); the trainer's
  dtype, param_dtype and remat_policy are left to common.train.defaults."""
  cfg = cfg or RoutingTransformerConfig()
  return {f: getattr(cfg, f) for f in MODEL_FIELDS if f not in config_contract.BASE_FIELDS}


def from_config(m: ml_collections.ConfigDict) -> RoutingTransformerConfig:
  """RoutingTransformerConfig from `config.model`; an unknown field or bad value is an error."""
  config_contract.check_fields(m, MODEL_FIELDS)
  return config_contract.dataclass_from(RoutingTransformerConfig, m)


def sequence_length(config: ml_collections.ConfigDict) -> int:
  """Tokens per example: H*W*C for the pixel LM (image data has no seq_len), else data.seq_len."""
  cfg = from_config(config.model)
  if cfg.positions == "learned_nd":
    return math.prod(cfg.image_shape)
  return config.data.seq_len


def check_sequence(cfg: RoutingTransformerConfig, seq_len: int) -> None:
  """Raises ValueError naming the config.model field for shapes `seq_len` cannot take."""
  if cfg.uses_local:
    check_blocks(seq_len, cfg.query_block, cfg.memory_flange)
  if cfg.uses_routing and cfg.window > seq_len:
    raise ValueError(f"config.model.window={cfg.window} must be <= the sequence length "
                     f"{seq_len} (each cluster takes its top-window positions).")


def check_blocks(seq_len: int, block: int, flange: int) -> None:
  """Local heads: query blocks tile the sequence; the look-back is whole blocks."""
  if block <= 0 or seq_len % block:
    raise ValueError(f"local block (config.model.query_block)={block} must be a positive "
                     f"divisor of the sequence length {seq_len}.")
  if flange < 0 or flange % block:
    raise ValueError(f"config.model.memory_flange={flange} must be a non-negative multiple of "
                     f"config.model.query_block={block}.")
