"""Flax NNX layers shared by every project. Import the module you need; nothing is eager.

  norms               LayerNorm, RMSNorm (T5 LayerNorm)
  activations         activations by name ('relu', 'gelu', 'gelu_tanh', 'relu2', 'silu', gated)
  topk                top-k thresholding along the last axis (Top-k Transformer)
  mlp                 Mlp: activation by name, optional top-k, sown 'act_nonzero' statistics
  intermediates       reading sown per-layer statistics by layer name
  attention           MultiHeadAttention, dot_product_attention, causal/padding masks
  remat               per-block activation rematerialisation by policy name
  patch_embed         PatchEmbed (conv as linear on patches), patchify
  position            learned and 2-D sin-cos position embeddings
  encoder_block       pre-LN transformer encoder block
  vit                 VisionTransformer classifier ('cls' / 'gap' pooling)
  relative_position   T5 relative position buckets and bias
  t5_blocks, t5       T5 encoder/decoder blocks and the encoder-decoder
  validation, dtypes, initializers   argument checks, dtype names, multi-axis initialisers

Every parameter carries logical axis names (`nnx.with_partitioning`) from: batch, embed, mlp,
heads, kv, vocab, expert (or None); every layer takes `dtype` (compute) and `param_dtype`.
"""
