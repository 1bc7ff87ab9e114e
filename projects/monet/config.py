"""Monet's model config: `MonetConfig`, the paper presets, and `config.model` -> MonetConfig.

MonetConfig's field names follow the official HF `MonetConfig` (dmis-lab/Monet@b5cb786
modeling_monet.py L45-112, a `LlamaConfig` subclass) so that a checkpoint's config.json maps onto
it one to one. Only the fields that change the computation are kept; `from_hf` drops HF
bookkeeping keys and refuses settings this port does not implement (RoPE scaling, tied
embeddings, attention bias).

Paper presets (Monet Tab. 6), `PRESETS` by name: "{vd,hd}-{850M,1.4B,4.1B}" with moe_groups=4
(the released checkpoints MonetLLM/monet-{vd,hd}-*-100BT-hf) and "...-groups1" (the
routing-group ablation, paper Tab. 8). All use vocab 32000 (LLaMA tokenizer), MHA, head_dim 128,
E=512 experts per sub-router and moe_topk=8 (confirmed for 1.4B by the released config.json; k
does not change the counts). Totals equal shared/golden/monet/param_counts.json (850M
853,501,440; 1.4B 1,465,157,632; 4.1B 4,173,401,088; 1.4B-groups1 1,767,147,520), which the tests
check with nnx.eval_shape.

Fields of `config.model` (declared by `add_fields`, checked by `from_config` before anything is
built; an unknown field is an error naming it):
  preset            '' or a paper preset name (PRESETS); with a preset, the architecture fields
                    below that are left at 0 / '' take the preset's value, and any that are set
                    override it.
  vocab_size, hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads (0 = MHA),
  moe_dim, moe_heads, moe_experts, moe_topk, moe_groups, moe_decompose ('vertical'|'horizontal'|
                    'dense': our baseline of equal parameters, MonetConfig.dense_width),
  hidden_act, max_position_embeddings, rope_theta, rms_norm_eps
                    as in MonetConfig (HF names)
  dtype, param_dtype   'float32' | 'bfloat16' | 'float16' (common.layers.dtypes.resolve_dtype)
  remat_policy      common.layers.remat.POLICIES, applied per decoder layer
  unif_weight, amb_weight, aux_reduce   the auxiliary-loss weights (paper: 1e-3 each) and how
                    they combine router layers ('mean' | 'sum'); read by task.py
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import ml_collections
from flax import nnx

from common import config_contract
from common.layers import dtypes

# 'dense' is ours, not the paper's: the equal-parameter baseline (MonetConfig.dense_width).
DECOMPOSITIONS = ("vertical", "horizontal", "dense")
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
class MonetConfig(config_contract.ModelFields):
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
    moe_decompose: "vertical" (MoVDE) or "horizontal" (MoHDE); "dense" (not in the paper or
      the official code) is the baseline of equal parameters: no routers, and each layer's
      experts replaced by one hidden_act MLP of width `dense_width`.
    hidden_act: expert activation; the paper and every checkpoint use "relu2" = relu(x)^2.
    rms_norm_eps: RMSNorm epsilon (1e-6).
    rope_theta: RoPE base.
    max_position_embeddings: longest sequence (also the default KV-cache length).
    bn_eps: router BatchNorm epsilon (torch BatchNorm1d default 1e-5).
    bn_momentum: torch-style momentum of the router running statistics (new = (1-m)*old + m*batch).
    dtype, param_dtype, remat_policy (config_contract.ModelFields): the matmuls' compute dtype
      (routing and norms still run in float32); rematerialisation is per decoder layer.
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

  def __post_init__(self):
    super().__post_init__()
    self.validate()

  @property
  def kv_heads(self) -> int:
    return self.num_attention_heads if self.num_key_value_heads is None else self.num_key_value_heads

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_attention_heads

  def has_router(self, layer: int) -> bool:
    """Layers 0, g, 2g, ... own a router; the others reuse it ([M:L216-217]). None if dense."""
    return layer % self.moe_groups == 0 and self.moe_decompose != "dense"

  @property
  def dense_width(self) -> int:
    """The hidden width of the 'dense' baseline's MLP (up d x w + bias w, down w x d + bias d):
    as many parameters as one layer's Monet experts (HD and VD alike: 2 d E m + E m + E d)
    plus its share of a router (2 sub-routers of d x H x E, one per moe_groups layers), to the
    nearest unit."""
    d, e, m, h = self.hidden_size, self.moe_experts, self.moe_dim, self.moe_heads
    target = 2 * d * e * m + e * m + e * d + 2 * d * h * e / self.moe_groups
    return max(1, round((target - d) / (2 * d + 1)))

  @property
  def router_layers(self) -> tuple[int, ...]:
    return tuple(l for l in range(self.num_hidden_layers) if self.has_router(l))

  def validate(self) -> None:
    """Raises ValueError naming the field, its value and what is allowed."""
    config_contract.check_positive(self, (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "moe_dim",
        "moe_heads", "moe_experts", "moe_topk", "moe_groups", "max_position_embeddings"),
        path="MonetConfig")
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


# --- paper presets ---------------------------------------------------------------------------

# size -> (layers, d_model, attention heads, moe_dim, moe_heads)   [P Tab.6]
_SIZES = {
    "850M": (24, 1536, 12, 12, 6),
    "1.4B": (24, 2048, 16, 16, 8),
    "4.1B": (32, 3072, 24, 24, 12),
}
_DECOMPOSE = {"vd": "vertical", "hd": "horizontal"}


def _preset(kind: str, size: str, groups: int) -> MonetConfig:
  layers, d, heads, moe_dim, moe_heads = _SIZES[size]
  return MonetConfig(
      vocab_size=32000, hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
      num_key_value_heads=heads, moe_dim=moe_dim, moe_heads=moe_heads, moe_experts=512, moe_topk=8,
      moe_groups=groups, moe_decompose=_DECOMPOSE[kind], hidden_act="relu2", rms_norm_eps=1e-6,
      rope_theta=10000.0, max_position_embeddings=2048)


PRESETS: dict[str, MonetConfig] = {}
for _kind in _DECOMPOSE:
  for _size in _SIZES:
    PRESETS[f"{_kind}-{_size}"] = _preset(_kind, _size, 4)
    PRESETS[f"{_kind}-{_size}-groups1"] = _preset(_kind, _size, 1)


def get_preset(name: str, **overrides) -> MonetConfig:
  """A paper config by name, e.g. get_preset("vd-1.4B", dtype=jnp.bfloat16)."""
  if name not in PRESETS:
    raise ValueError(f"preset={name!r}: allowed values are {sorted(PRESETS)}.")
  return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]


def count_params(cfg: MonetConfig) -> dict[str, int]:
  """Parameter counts by part, from nnx.eval_shape (allocates nothing).

  Parts match param_counts.json: embed_tokens, lm_head, attention, rmsnorm_weights, router,
  experts, total_params. BatchNorm statistics are BatchStat, not parameters (as torch buffers).
  """
  from projects.monet.model import MonetForCausalLM  # pylint: disable=g-import-not-at-top
  abstract = nnx.eval_shape(lambda: MonetForCausalLM(cfg, rngs=nnx.Rngs(0)))
  counts = {"embed_tokens": 0, "lm_head": 0, "attention": 0, "rmsnorm_weights": 0, "router": 0,
            "experts": 0}
  for path, var in nnx.to_flat_state(nnx.state(abstract, nnx.Param)):
    names = [p for p in path if isinstance(p, str)]
    part = ("embed_tokens" if names[0] == "embed_tokens" else "lm_head" if names[0] == "lm_head"
            else "attention" if "attn" in names else "router" if "router" in names
            else "experts" if "moe" in names else "rmsnorm_weights")
    counts[part] += math.prod(var.get_value().shape)
  counts["total_params"] = sum(counts.values())
  return counts


# --- config.model -> MonetConfig -------------------------------------------------------------

ARCH_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "moe_dim", "moe_heads", "moe_experts", "moe_topk",
               "moe_groups", "moe_decompose", "hidden_act", "max_position_embeddings",
               "rope_theta", "rms_norm_eps")
TASK_FIELDS = ("unif_weight", "amb_weight", "aux_reduce")  # read by task.py
ALLOWED_FIELDS = ("preset",) + ARCH_FIELDS + TASK_FIELDS   # + config_contract.BASE_FIELDS


def add_fields(m: ml_collections.ConfigDict, *, preset: str = "") -> None:
  """Declares every Monet field on `m` (0 / '' = take from the preset), so overrides type-check."""
  m.preset = preset
  for name in ARCH_FIELDS:
    if name in ("moe_decompose", "hidden_act"):
      m[name] = ""
    elif name in ("rope_theta", "rms_norm_eps"):
      m[name] = 0.0
    else:
      m[name] = 0
  m.unif_weight = 1e-3
  m.amb_weight = 1e-3
  m.aux_reduce = "mean"


def from_config(m: ml_collections.ConfigDict) -> MonetConfig:
  """The MonetConfig that `m` describes; bad values raise ValueError naming config.model.<f>."""
  config_contract.check_fields(m, ALLOWED_FIELDS)
  preset = m.get("preset", "")
  if preset and preset not in PRESETS:
    raise ValueError(f"config.model.preset={preset!r}: allowed values are '' or {sorted(PRESETS)}.")
  base = PRESETS[preset] if preset else MonetConfig()
  kwargs = {}
  for name in ARCH_FIELDS:
    value = m.get(name, None)
    if value in (None, 0, 0.0, ""):
      continue  # unset: keep the preset's (or MonetConfig's default) value
    kwargs[name] = value
  if not preset:
    missing = [n for n in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                           "moe_dim", "moe_heads", "moe_experts", "moe_topk") if n not in kwargs]
    if missing:
      raise ValueError(f"config.model.{missing[0]} is unset (0) and config.model.preset=''; set "
                       f"{missing} or name a preset, one of {sorted(PRESETS)}.")
  for name in ("dtype", "param_dtype"):
    kwargs[name] = dtypes.resolve_dtype(m.get(name, "float32"), f"config.model.{name}")
  kwargs["remat_policy"] = m.get("remat_policy", "none")
  try:
    return base.replace(**kwargs)
  except ValueError as e:
    raise ValueError(f"config.model: {e}") from e
