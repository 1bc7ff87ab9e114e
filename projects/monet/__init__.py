"""Monet: Mixture of Monosemantic Experts for Transformers (Park et al., ICLR 2025), in Flax NNX.

Port of the official HF model dmis-lab/Monet@b5cb786 `modeling_monet.py`; see
shared/specs/experts.md §1. Modules:

  config.py     MonetConfig (HF field names, validated), the paper presets (850M / 1.4B / 4.1B;
                VD/HD; groups 4 and 1), parameter counting, and config.model -> MonetConfig
  attention.py  rotate_half RoPE, causal attention with KV cache (LLaMA numerics)
  router.py     MonetRouter: BN-threshold routing (common BatchNorm, running stats nnx.BatchStat)
  experts.py    MonetMoHDE / MonetMoVDE expert decompositions
  model.py      MonetForCausalLM, MonetOutput, KVCache
  losses.py     shifted cross-entropy, uniformity and ambiguity auxiliary losses
  sharding.py   logical-axis -> mesh rules for expert parallelism
  generate.py   greedy decoding with the KV cache
  convert.py    CLI: run an official golden case; an HF checkpoint -> a trainer checkpoint

Norms, init keys and params come from common/layers. Every module takes `train=False` /
`rngs=None` keyword arguments; `train=True` makes the routers use batch statistics.
"""
import common  # noqa: F401  (logical-axis metadata without a mesh; see common/__init__.py)
from projects.monet.config import MonetConfig
from projects.monet.model import KVCache, MonetForCausalLM, MonetOutput

__all__ = ["MonetConfig", "MonetForCausalLM", "MonetOutput", "KVCache"]
