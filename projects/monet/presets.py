"""Paper configurations (Monet Tab. 6) and parameter counting.

Names: "{vd,hd}-{850M,1.4B,4.1B}" with moe_groups=4 (the released checkpoints
MonetLLM/monet-{vd,hd}-*-100BT-hf) and "...-groups1" (the routing-group ablation, paper Tab. 8).
All use vocab 32000 (LLaMA tokenizer), MHA, head_dim 128, E=512 experts per sub-router and
moe_topk=8 (confirmed for 1.4B by the released config.json; k does not change the counts).
Totals equal shared/golden/monet/param_counts.json (850M 853,501,440; 1.4B 1,465,157,632;
4.1B 4,173,401,088; 1.4B-groups1 1,767,147,520), which the tests check with nnx.eval_shape.
"""
from __future__ import annotations

import math

from flax import nnx

from projects.monet.config import MonetConfig

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
