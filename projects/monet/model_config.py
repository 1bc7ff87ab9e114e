"""`config.model` (an ml_collections ConfigDict) -> MonetConfig, and the config section's layout.

Fields of `config.model` read here:
  preset            '' or a paper preset name ('vd-1.4B', 'hd-850M-groups1', ... see presets.py);
                    with a preset, the architecture fields below that are left at 0 / '' take
                    the preset's value, and any that are set override it.
  vocab_size, hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads (0 = MHA),
  moe_dim, moe_heads, moe_experts, moe_topk, moe_groups, moe_decompose ('vertical'|'horizontal'),
  hidden_act, max_position_embeddings, rope_theta, rms_norm_eps
                    as in MonetConfig (HF names)
  dtype, param_dtype   'float32' | 'bfloat16' (common.train.defaults)
  remat_policy      only 'none' (Monet layers are not rematerialised yet)
  unif_weight, amb_weight, aux_reduce   the auxiliary-loss weights (paper: 1e-3 each) and how
                    they combine router layers ('mean' | 'sum'); read by task.py
"""
from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from projects.monet import presets
from projects.monet.config import MonetConfig

ARCH_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "moe_dim", "moe_heads", "moe_experts", "moe_topk",
               "moe_groups", "moe_decompose", "hidden_act", "max_position_embeddings",
               "rope_theta", "rms_norm_eps")
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


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
  if m.get("remat_policy", "none") != "none":
    raise ValueError(f"config.model.remat_policy={m.remat_policy!r}: Monet supports only 'none'.")
  for f in ("dtype", "param_dtype"):
    if m.get(f, "float32") not in _DTYPES:
      raise ValueError(f"config.model.{f}={m.get(f)!r}: allowed {sorted(_DTYPES)}.")
  preset = m.get("preset", "")
  base = presets.get_preset(preset) if preset else MonetConfig()
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
                       f"{missing} or name a preset, one of {sorted(presets.PRESETS)}.")
  kwargs["dtype"] = _DTYPES[m.get("dtype", "float32")]
  kwargs["param_dtype"] = _DTYPES[m.get("param_dtype", "float32")]
  try:
    return base.replace(**kwargs)
  except ValueError as e:
    raise ValueError(f"config.model: {e}") from e
