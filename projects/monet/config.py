"""MonetConfig: the hyper-parameters of a Monet decoder, validated.

Field names follow the official HF `MonetConfig` (dmis-lab/Monet@b5cb786 modeling_monet.py L45-112,
a `LlamaConfig` subclass) so that a checkpoint's config.json maps onto this class one to one. Only
the fields that change the computation are kept; `from_hf` drops HF bookkeeping keys and refuses
settings this port does not implement (RoPE scaling, tied embeddings, attention bias).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import jax.numpy as jnp

DECOMPOSITIONS = ("vertical", "horizontal")
ACTIVATIONS = ("relu2", "relu", "silu", "gelu")

# HF config keys that carry no numerics for this port (or only training-time numerics that are
# zero in every released checkpoint). They are accepted and dropped by `MonetConfig.from_hf`.
_HF_IGNORED_KEYS = frozenset({
    "_name_or_path", "architectures", "auto_map", "model_type", "torch_dtype", "transformers_version",
    "use_cache", "pad_token_id", "bos_token_id", "eos_token_id", "initializer_range",
    "pretraining_tp", "intermediate_size", "mlp_bias", "output_router_probs",
    "_attn_implementation_autoset", "attn_implementation", "_attn_implementation", "attention_dropout",
    "keys_to_ignore_at_inference", "return_dict", "output_hidden_states", "output_attentions",
})


@dataclasses.dataclass(frozen=True)
class MonetConfig:
  """Monet decoder hyper-parameters (names as in the official HF config).

  Attributes:
    vocab_size: tokenizer size (32000 for the released LLaMA-tokenizer models).
    hidden_size: model width d.
    num_hidden_layers: number of decoder layers.
    num_attention_heads: attention heads; head_dim = hidden_size // num_attention_heads.
    num_key_value_heads: kv heads (None = MHA); must divide num_attention_heads.
    moe_dim: expert hidden width m (VD splits it into two halves of m/2).
    moe_heads: routing heads H; their outputs are summed.
    moe_experts: experts per sub-router E (= sqrt of the number of experts N).
    moe_topk: k, sets the routing threshold Phi^-1(1 - k/E).
    moe_groups: one router per this many consecutive layers.
    moe_decompose: "vertical" (MoVDE) or "horizontal" (MoHDE).
    hidden_act: expert activation; the paper and every checkpoint use "relu2" = relu(x)^2.
    rms_norm_eps: RMSNorm epsilon (1e-6).
    rope_theta: RoPE base.
    max_position_embeddings: longest sequence (also the default KV-cache length).
    bn_eps: router BatchNorm epsilon (torch BatchNorm1d default 1e-5).
    bn_momentum: torch-style momentum of the router running statistics (new = (1-m)*old + m*batch).
    dtype: compute dtype of the matmuls (activations); routing and norms still run in float32.
    param_dtype: storage dtype of the parameters.
  """
  vocab_size: int = 32000
  hidden_size: int = 2048
  num_hidden_layers: int = 24
  num_attention_heads: int = 16
  num_key_value_heads: int | None = None
  moe_dim: int = 16
  moe_heads: int = 8
  moe_experts: int = 512
  moe_topk: int = 8
  moe_groups: int = 4
  moe_decompose: str = "vertical"
  hidden_act: str = "relu2"
  rms_norm_eps: float = 1e-6
  rope_theta: float = 10000.0
  max_position_embeddings: int = 2048
  bn_eps: float = 1e-5
  bn_momentum: float = 0.1
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def __post_init__(self):
    self.validate()

  @property
  def kv_heads(self) -> int:
    return self.num_attention_heads if self.num_key_value_heads is None else self.num_key_value_heads

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_attention_heads

  def has_router(self, layer: int) -> bool:
    """Layers 0, g, 2g, ... own a router; the others reuse it ([M:L216-217])."""
    return layer % self.moe_groups == 0

  @property
  def router_layers(self) -> tuple[int, ...]:
    return tuple(l for l in range(self.num_hidden_layers) if self.has_router(l))

  def validate(self) -> None:
    """Raises ValueError naming the field, its value and what is allowed."""
    positive = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "moe_dim",
                "moe_heads", "moe_experts", "moe_topk", "moe_groups", "max_position_embeddings")
    for name in positive:
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"MonetConfig.{name}={value!r}: must be a positive int.")
    if self.hidden_size % self.num_attention_heads:
      raise ValueError(
          f"MonetConfig.hidden_size={self.hidden_size}: must be divisible by "
          f"num_attention_heads={self.num_attention_heads}.")
    if self.head_dim % 2:
      raise ValueError(
          f"MonetConfig.hidden_size/num_attention_heads={self.head_dim}: RoPE needs an even head_dim.")
    kv = self.kv_heads
    if not isinstance(kv, int) or kv < 1 or self.num_attention_heads % kv:
      raise ValueError(
          f"MonetConfig.num_key_value_heads={self.num_key_value_heads!r}: must be a positive divisor "
          f"of num_attention_heads={self.num_attention_heads} (or None for MHA).")
    if self.moe_decompose not in DECOMPOSITIONS:
      raise ValueError(
          f"MonetConfig.moe_decompose={self.moe_decompose!r}: allowed values are {DECOMPOSITIONS}.")
    if self.moe_decompose == "vertical":
      if self.moe_dim % 2:
        raise ValueError(
            f"MonetConfig.moe_dim={self.moe_dim}: the vertical decomposition splits it in halves, "
            "so it must be even.")
      if self.hidden_size % 2:
        raise ValueError(
            f"MonetConfig.hidden_size={self.hidden_size}: the vertical decomposition splits it in "
            "halves, so it must be even.")
    if not self.moe_topk < self.moe_experts:
      raise ValueError(
          f"MonetConfig.moe_topk={self.moe_topk}: must be smaller than moe_experts={self.moe_experts} "
          "(the threshold is Phi^-1(1 - k/E)).")
    if self.hidden_act not in ACTIVATIONS:
      raise ValueError(f"MonetConfig.hidden_act={self.hidden_act!r}: allowed values are {ACTIVATIONS}.")
    for name in ("rms_norm_eps", "bn_eps", "rope_theta"):
      value = getattr(self, name)
      if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"MonetConfig.{name}={value!r}: must be a positive finite number.")
    if not 0.0 <= self.bn_momentum <= 1.0:
      raise ValueError(f"MonetConfig.bn_momentum={self.bn_momentum!r}: must lie in [0, 1].")

  def replace(self, **changes) -> "MonetConfig":
    return dataclasses.replace(self, **changes)

  @classmethod
  def from_hf(cls, hf: Mapping[str, Any], **overrides) -> "MonetConfig":
    """Builds a config from an HF config.json dict (or the official constructor kwargs).

    Keys without numerics for this port are dropped; settings the port does not implement raise.
    Unknown keys raise too, listing them, so that a new upstream option is never silently ignored.
    """
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs, unknown = {}, []
    for key, value in hf.items():
      if key in fields:
        kwargs[key] = value
      elif key in _HF_IGNORED_KEYS:
        continue
      elif key == "head_dim":
        if value is not None and value * hf["num_attention_heads"] != hf["hidden_size"]:
          raise ValueError(
              f"config head_dim={value}: only hidden_size/num_attention_heads is supported.")
      elif key == "rope_scaling":
        if value is not None:
          raise ValueError(f"config rope_scaling={value!r}: only None (plain RoPE) is supported.")
      elif key in ("tie_word_embeddings", "attention_bias"):
        if value:
          raise ValueError(f"config {key}={value!r}: only False is supported (as in every checkpoint).")
      else:
        unknown.append(key)
    if unknown:
      raise ValueError(f"config: unknown keys {sorted(unknown)}; known are {sorted(fields)}.")
    kwargs.update(overrides)
    return cls(**kwargs)
