"""Flax NNX layers shared by every project. Import the module you need; nothing is eager.

  keys                KeyStream / init_keys: the one init-key helper; param(init, axes, key, ...)
  initializers        torch default (torch_uniform), timm trunc_normal, multi-axis kernels
  linear              Linear (kernel (in, out), bias; torch default init)
  conv                Conv2d (NHWC, torch padding and init, groups; fast exact depthwise)
  norms               LayerNorm, RMSNorm (T5/LLaMA), BatchNorm (torch numerics, nnx.BatchStat)
  dropout             Dropout, DropPath and their functions (train=, rngs= convention)
  activations         activations by name ('relu', 'gelu', 'gelu_tanh', 'relu2', 'silu', gated)
  topk                top-k thresholding along the last axis (Top-k Transformer)
  mlp                 Mlp: activation by name, optional top-k, sown 'act_nonzero' statistics,
                      configurable projection names (fc1/fc2 ports), timm output dropout
  moe                 Switch and MoE-X routers, dense or capacity dispatch, balance losses
  intermediates       reading sown per-layer statistics by layer name
  attention           MultiHeadAttention, dot_product_attention, causal_attention (by query
                      chunks), causal/padding masks
  remat               per-block activation rematerialisation by policy name
  patch_embed         PatchEmbed (conv as linear on patches), patchify
  position            learned and 2-D sin-cos position embeddings
  encoder_block       pre-LN transformer encoder block
  vit                 VisionTransformer classifier ('cls' / 'gap' pooling)
  validation, dtypes  argument checks, dtype names (resolve_dtype: the one place)
  variables           params_as: a module copy whose weights are model state (teacher, EMA target)

Every parameter carries logical axis names (`nnx.with_partitioning`) from: batch, embed, mlp,
heads, kv, vocab, expert (or None); every layer takes `dtype` (compute) and `param_dtype`.
Modules that act differently in training take `__call__(x, ..., *, train=False, rngs=None)` and
draw randomness only from that `rngs` (`rngs.dropout()`); no layer owns an RNG stream.
"""
