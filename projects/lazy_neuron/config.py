"""The Lazy Neuron models' config: `ViTConfig` and `T5Config` (the fields of `config.model`),
the paper presets under their paper names, and `from_config(config.model)`.

`config.model.name` picks the model ('vit' | 't5'); the other fields are those of its dataclass
(an unknown one is an error naming it, before anything is built). Shared fields:
  mlp_activation          relu | gelu (exact erf) | gelu_tanh | relu2 | silu | geglu | swiglu |
                          reglu (common.layers.activations)
  top_k                   int for all layers or tuple (one per layer: ViT blocks; T5 encoder
                          then decoder layers); 0 = off; 0 <= k <= the MLP width
  topk_mode               threshold (a >= k-th value; ties kept; fastest) | exact (exactly k
                          kept) | approx (lax.approx_max_k, TPU)
  dropout_rate            ViT: residual, embedding and MLP-hidden dropout; T5: also attention
  sow_activations         also sow raw MLP activations (probing; memory-heavy)
  dtype / param_dtype     compute / parameter dtype names (common.layers.dtypes)
  remat_policy            per-block rematerialisation (common.layers.remat.POLICIES)
ViT only (image size, channels and classes come from config.data):
  patch_size              patch side p; must divide config.data.image_size
  width, depth, num_heads, mlp_dim   token width D (divisible by num_heads, and by 4 for
                          posemb sincos2d), blocks, heads, MLP hidden width
  pool                    cls (class token) | gap (mean of patch tokens)
  posemb                  learn | sincos2d
  attention_dropout_rate  dropout on attention weights (train only)
  head_zero_init          zero-initialise the classifier head (big_vision default)
  label_smoothing         in the training loss only
T5 only:
  vocab_size, d_model, d_ff, num_heads, head_dim, num_encoder_layers, num_decoder_layers
  relative_buckets, relative_max_distance   T5 relative position bias (32, 128)
  tie_embeddings          True: v1.0 shared embedding, logits scaled by d_model^-0.5
  z_loss                  coefficient of log(Z)^2 in the loss
"""
from __future__ import annotations

import dataclasses
from typing import Union

import ml_collections

from common import config_contract
from common.layers import activations, topk, validation, vit
from common.train import config_variants

MODELS = ("vit", "t5")
TopK = Union[int, tuple[int, ...]]


def _field(name: str) -> str:
  return f"config.model.{name}"


def _check_top_k(top_k: TopK, depth: int, width_field: str, width: int) -> None:
  """top_k: one int for all layers or a sequence with one per layer; 0 = off."""
  for k in validation.per_layer(_field("top_k"), top_k, depth):
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= width:
      raise ValueError(f"{_field('top_k')}={top_k!r}: each k must be an integer in "
                       f"[0, {_field(width_field)}={width}] (0 = top-k off).")


@dataclasses.dataclass(frozen=True)
class _SharedFields(config_contract.ModelFields):
  """The fields both models have: the MLP activation, its top-k, dropout, activation probes."""
  mlp_activation: str = "relu"
  top_k: TopK = 0
  topk_mode: str = "threshold"
  dropout_rate: float = 0.1
  sow_activations: bool = False

  def __post_init__(self):
    super().__post_init__()
    validation.check_choice(_field("mlp_activation"), self.mlp_activation, activations.ACTIVATIONS)
    validation.check_choice(_field("topk_mode"), self.topk_mode, topk.TOPK_MODES)
    validation.check_rate(_field("dropout_rate"), self.dropout_rate)


@dataclasses.dataclass(frozen=True)
class ViTConfig(_SharedFields):
  """A ViT classifier (common.layers.vit); the defaults are ViT-B/16 with ReLU MLPs."""
  patch_size: int = 16
  width: int = 768
  depth: int = 12
  num_heads: int = 12
  mlp_dim: int = 3072
  pool: str = "cls"
  posemb: str = "learn"
  attention_dropout_rate: float = 0.0
  head_zero_init: bool = True
  label_smoothing: float = 0.0

  def __post_init__(self):
    super().__post_init__()
    config_contract.check_positive(self, ("patch_size", "width", "depth", "num_heads", "mlp_dim"))
    validation.check_divides(_field("width"), self.width, _field("num_heads"), self.num_heads)
    validation.check_choice(_field("pool"), self.pool, vit.POOLS)
    validation.check_choice(_field("posemb"), self.posemb, vit.POSEMBS)
    if self.posemb == "sincos2d" and self.width % 4:
      raise ValueError(f"{_field('posemb')}='sincos2d' needs {_field('width')} % 4 == 0; got "
                       f"width={self.width}.")
    validation.check_rate(_field("attention_dropout_rate"), self.attention_dropout_rate)
    validation.check_rate(_field("label_smoothing"), self.label_smoothing)
    _check_top_k(self.top_k, self.depth, "mlp_dim", self.mlp_dim)


@dataclasses.dataclass(frozen=True)
class T5Config(_SharedFields):
  """A T5 encoder-decoder (projects/lazy_neuron/t5.py); the defaults are T5-Base (v1.0)."""
  vocab_size: int = 32128
  d_model: int = 768
  d_ff: int = 3072
  num_heads: int = 12
  head_dim: int = 64
  num_encoder_layers: int = 12
  num_decoder_layers: int = 12
  relative_buckets: int = 32
  relative_max_distance: int = 128
  tie_embeddings: bool = True
  z_loss: float = 1e-4

  def __post_init__(self):
    super().__post_init__()
    config_contract.check_positive(self, (
        "vocab_size", "d_model", "d_ff", "num_heads", "head_dim", "num_encoder_layers",
        "num_decoder_layers", "relative_buckets", "relative_max_distance"))
    _check_top_k(self.top_k, self.num_encoder_layers + self.num_decoder_layers, "d_ff",
                 self.d_ff)
    if self.z_loss < 0:
      raise ValueError(f"{_field('z_loss')}={self.z_loss!r} must be >= 0 (0 = off).")


CONFIGS = {"vit": ViTConfig, "t5": T5Config}

# The paper's models (Li et al. 2023, Sec. 2): ViT-B/16 and T5-Base with ReLU MLPs, dense.
PRESETS: dict[str, ViTConfig | T5Config] = {
    "ViT-B/16": ViTConfig(),
    "T5-Base": T5Config(),
}


def set_fields(m: ml_collections.ConfigDict, model: str | ViTConfig | T5Config,
               **overrides) -> None:
  """Writes `model` (a preset name or a config) with `overrides` into config.model, with
  config.model.name; dtype, param_dtype and remat_policy stay as common.train.defaults set
  them. top_k takes an int or a tuple on the command line (`--config.model.top_k='(4, 0)'`)."""
  if isinstance(model, str):
    validation.check_choice("preset", model, PRESETS)
    model = PRESETS[model]
  cfg = dataclasses.replace(model, **overrides)
  m.name = next(name for name, cls in CONFIGS.items() if isinstance(cfg, cls))
  config_contract.write_fields(m, cfg, top_k=config_variants.int_or_tuple)


def from_config(m: ml_collections.ConfigDict) -> ViTConfig | T5Config:
  """config.model -> ViTConfig or T5Config by config.model.name; an unknown field or a bad
  value is a ValueError naming it."""
  validation.check_choice(_field("name"), m.get("name"), MODELS)
  cls = CONFIGS[m.name]
  config_contract.check_fields(m, ("name",) + config_contract.dataclass_fields(cls))
  return config_contract.dataclass_from(cls, m)


def apply_variants(c: ml_collections.ConfigDict, flags: set[str], values: dict,
                   topk_default: int) -> ml_collections.ConfigDict:
  """The variants every configs/ file takes: 'gelu' (GELU MLPs), 'topk' (k = topk_default),
  'k=<int>' (that k), 'steps=<int>' (common.train.config_variants.set_steps)."""
  if "gelu" in flags:
    c.model.mlp_activation = "gelu"
  if "topk" in flags:
    c.model.top_k = topk_default
  if "k" in values:
    c.model.top_k = values["k"]
  if "steps" in values:
    config_variants.set_steps(c, values["steps"])
  return c
