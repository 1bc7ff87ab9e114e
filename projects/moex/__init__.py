"""MoE-X (Yang et al., ICML 2025): interpretable mixture-of-experts GPT-2 language models.

The expert layers live in common/layers/moe.py; this package holds the decoder LM whose FFN is
selectable (dense GELU/ReLU, Switch, MoE-X and the paper's Tab. 3 ablations), its task, configs,
up-cycling from a dense run, and the chess board-state evaluator.
"""
