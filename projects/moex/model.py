"""A GPT-2-style decoder LM whose FFN is dense, Switch or MoE-X (projects/moex/ffn.py).

    x = tok_emb(ids) + pos_emb[:T]
    x = x + attn(LN(x), causal)          per block
    x = x + ffn(LN(x))                   every block's FFN is of the configured kind
    logits = LN(x) tok_emb^T             (tied embeddings, as GPT-2 and Karvonen's chess-GPT)

GPT-2's numerics: LayerNorm eps 1e-5, weights N(0, 0.02), the residual output projections
N(0, 0.02 / sqrt(2 L)), token embeddings N(0, 0.02), positions N(0, 0.01), zero biases. No
dropout (the paper trains with dropout 0), so `train` changes nothing. Each block's forward is
rematerialised by `cfg.remat_policy` (common.layers.remat).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

import common  # noqa: F401
from common.layers import attention, norms, remat, validation
from projects.moex import ffn as ffn_lib
from projects.moex.config import ModelConfig


class Block(nnx.Module):

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    out_init = nnx.initializers.normal(0.02 / math.sqrt(2 * cfg.num_layers))
    kw = dict(dtype=cfg.dtype, param_dtype=cfg.param_dtype)
    self.ln1 = norms.LayerNorm(cfg.d_model, epsilon=1e-5, **kw)
    self.attn = attention.MultiHeadAttention(
        cfg.num_heads, cfg.d_model, kernel_init=nnx.initializers.normal(0.02),
        out_kernel_init=out_init, rngs=rngs, **kw)
    self.ln2 = norms.LayerNorm(cfg.d_model, epsilon=1e-5, **kw)
    self.ffn = ffn_lib.build(cfg, out_init=out_init, rngs=rngs, **kw)

  def __call__(self, x, token_mask):
    x = x + self.attn(self.ln1(x), causal=True)
    return x + self.ffn(self.ln2(x), token_mask=token_mask)


class GPT(nnx.Module):
  """ids [B, T] int -> logits [B, T, vocab] (float32)."""

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    # vocab_size 0 ('from the tokenizer') must be resolved by the task before building.
    validation.check_positive("config.model.vocab_size", cfg.vocab_size)
    self.cfg = cfg
    embed = nnx.with_partitioning(nnx.initializers.normal(0.02), ("vocab", "embed"))
    pos = nnx.with_partitioning(nnx.initializers.normal(0.01), (None, "embed"))
    self.tok_emb = nnx.Param(embed(rngs.params(), (cfg.vocab_size, cfg.d_model),
                                   cfg.param_dtype))
    self.pos_emb = nnx.Param(pos(rngs.params(), (cfg.max_len, cfg.d_model), cfg.param_dtype))
    self.layers = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
    self.ln_f = norms.LayerNorm(cfg.d_model, epsilon=1e-5, dtype=cfg.dtype,
                                param_dtype=cfg.param_dtype)

  def __call__(self, ids: jax.Array, *, token_mask: jax.Array | None = None,
               train: bool = False, rngs: nnx.Rngs | None = None) -> jax.Array:
    del train, rngs  # no dropout (the paper's setting): train and eval are the same forward
    t = ids.shape[-1]
    if t > self.cfg.max_len:
      raise ValueError(f"sequence length {t} exceeds config.model.max_len={self.cfg.max_len}.")
    dtype = self.cfg.dtype or jnp.float32
    emb = self.tok_emb[...].astype(dtype)
    x = jnp.take(emb, ids, axis=0) + self.pos_emb[:t].astype(dtype)
    apply_block = remat.remat(lambda block, x, token_mask: block(x, token_mask),
                              self.cfg.remat_policy)
    for block in self.layers:
      x = apply_block(block, x, token_mask)
    x = self.ln_f(x)
    return jnp.einsum("btd,vd->btv", x, emb, preferred_element_type=jnp.float32)

  def capture_hidden(self, layer: int | None) -> str:
    """Sow the FFN hidden code of `layer` only (None: none; negative counts from the end);
    returns the intermediate's name ('mlp_hidden' for MoE, 'activations' for dense)."""
    n = len(self.layers)
    if layer is not None and not -n <= layer < n:
      raise ValueError(f"hidden layer {layer} out of range for {n} layers.")
    names = [ffn_lib.set_capture(b.ffn, layer is not None and i == layer % n)
             for i, b in enumerate(self.layers)]
    return names[0]
