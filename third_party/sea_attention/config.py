"""Official (BertConfig, PerlinAttentionConfig) fields -> SEAAttention constructor kwargs.

Only the settings of the causal OPT reference path are ported; any other value of a field that
changes the computation is refused with a ValueError naming the field.
"""
from __future__ import annotations

from typing import Any, Mapping

# PerlinAttentionConfig fields whose value must be exactly this for the ported path
# (defaults of scripts/opt.py; see shared/specs/sequence.md §2.1).
_REQUIRED = {
    "causal": True,
    "k_flatten": True,
    "k_flatten_dim": "causal_batch",
    "attention_predictor_method": "mlp",
    "attention_predictor_backend": "performer",
    "lora_enabled": False,
    "lora_in_approx_enabled": False,
    "context_output_method": "mix",
    "k_oversample": 1.0,
    "out_add_performer_context": False,
    "use_cache": False,
    "random_lookup": False,
    "attention_predictor_enc_per_layer": False,
}
# Fields that do not change the eval-mode forward (training schedule, compilation, layerwise
# training, knobs of unused branches).
_IRRELEVANT = {"layerwise", "compile", "reformer_n_hashs", "random_lookup_count", "lora_r",
               "attention_predictor_comp_book_size", "attention_predictor_comp_patch_size",
               "attention_predictor_comp_patch_count", "v_eye_length", "out_norm"}
_MAPPED = {"k", "attention_predictor_length", "performer_nb_factor", "partial_attention_scaler"}


def layer_kwargs_from_configs(bert_config: Mapping[str, Any],
                              perlin_config: Mapping[str, Any]) -> dict[str, Any]:
  """Returns kwargs for projects.sea.attention.SEAAttention (without rngs/impl/dtypes)."""
  for field, allowed in _REQUIRED.items():
    if field in perlin_config and perlin_config[field] != allowed:
      raise ValueError(f"PerlinAttentionConfig.{field}={perlin_config[field]!r} is not supported: "
                       f"only {allowed!r} (the causal OPT reference path) is ported.")
  unknown = sorted(set(perlin_config) - set(_REQUIRED) - _IRRELEVANT - _MAPPED)
  if unknown:
    raise ValueError(f"PerlinAttentionConfig has unknown fields {unknown}; known: "
                     f"{sorted(set(_REQUIRED) | _IRRELEVANT | _MAPPED)}.")
  for field in ("hidden_size", "num_attention_heads"):
    if field not in bert_config:
      raise ValueError(f"BertConfig.{field} is missing; it is required.")
  hidden, heads = int(bert_config["hidden_size"]), int(bert_config["num_attention_heads"])
  if hidden % heads:
    raise ValueError(f"BertConfig.hidden_size={hidden} is not allowed: it must be divisible by "
                     f"num_attention_heads={heads}.")
  return dict(
      num_heads=heads,
      head_dim=hidden // heads,
      # PerlinAttentionConfig defaults (config.py) where a field is absent.
      k=int(perlin_config.get("k", 7)),
      predictor_length=int(perlin_config.get("attention_predictor_length", 128)),
      performer_nb_factor=perlin_config.get("performer_nb_factor", 1),
      # attention.py: `config.max_position_embeddings if hasattr(...) else 2048`.
      max_position_embeddings=int(bert_config.get("max_position_embeddings", 2048)),
      partial_attention_scaler=bool(perlin_config.get("partial_attention_scaler", True)),
  )
