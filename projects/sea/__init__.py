"""SEA: Sparse linear attention with an Estimated Attention mask (Lee et al., ICLR 2024).

Port of gmlwns2000/sea-attention@5609413b (`PerlinAttention`, causal OPT variant):
  attention.py         SEAAttention, the layer (q, k, v -> SEAOutput)
  performer.py         causal generalized-ReLU Performer (the estimator's backbone)
  estimator.py         encoder MLP and causal CNN decoder to T_M compressed bins
  masks.py             grouped top-k across heads, per-row budget, nearest bin map
  sparse_attention.py  dense reference and row-sparse attention implementations
  convert.py           CLI: run an official golden case from converted weights
Weight conversion lives in third_party/sea_attention.
"""

# Switches off Flax eager variable sharding so parameters can carry logical-axis metadata
# without a mesh (see common/__init__.py).
import common  # noqa: F401,E402
