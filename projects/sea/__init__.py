"""SEA: Sparse linear attention with an Estimated Attention mask (Lee et al., ICLR 2024).

Port of gmlwns2000/sea-attention@5609413b (`PerlinAttention`, causal OPT variant):
  config.py            OPTConfig, the paper presets, from_config(config.model), lr groups
  attention.py         SEAAttention, the layer (q, k, v -> SEAOutput)
  performer.py         causal generalized-ReLU Performer (the estimator's backbone)
  estimator.py         encoder MLP and causal CNN decoder to T_M compressed bins
  masks.py             grouped top-k across heads, per-row budget, nearest bin map
  sparse_attention.py  the official dense-mask attention and a row-sparse jnp gather
  convert.py           CLI: an official golden case; step 0 of a run from HF OPT weights
  losses.py            the distillation losses (spec §2.4)
  opt.py               HF OPT decoder, dense or SEA per layer
  weights.py           dense OPT weight trees in and out of models
  task.py              get_task: distillation (frozen teacher -> SEA student) or plain LM
  perplexity.py        strided perplexity (the official Wikitext-2 protocol), its evaluator
  wikitext.py          Wikitext-2 training windows (OPT BPE)
  export_opt.py        CLI: step 0 of a run from a dense run (HF weights: convert.py --hf)
  visualize.py, demo.py, colab.ipynb   true vs estimated attention; the CPU demo
Weight conversion lives in third_party/sea_attention (SEA layers) and third_party/hf_opt (OPT).
"""

# Switches off Flax eager variable sharding so parameters can carry logical-axis metadata
# without a mesh (see common/__init__.py).
import common  # noqa: F401,E402
