"""T5 encoder-decoder (Raffel et al. 2020), teacher-forced, for span corruption or seq2seq.

Default choices are T5 v1.0 (Mesh TF / T5X `t5_1_0`): ReLU MLP, one embedding shared by the
encoder input, decoder input and output logits, and logits scaled by d_model^-0.5 because
the embedding (initialised N(0, 1)) is reused as the output layer. `tie_embeddings=False` gives
the v1.1 layout (a separate, unscaled logits layer; pair it with activation='geglu').

Masks come from the tokens (0 is padding): encoder self-attention and cross-attention hide
padded encoder positions; decoder self-attention is causal. Decoder padding needs no mask of its
own (padding only follows real tokens, so the causal mask hides it), but `decoder_target_tokens`
marks which decoder positions count in the MLP statistics, as in T5X's decoder mask. Packed
examples (segment ids) are not supported.

Per-layer MLP statistics are named 'encoder_layer_<i>' and 'decoder_layer_<i>'
(common.layers.intermediates).

Call convention: `train=True` turns on dropout, whose keys come from `rngs.dropout()` only.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.layers import attention, norms, remat, validation
from common.layers.dropout import Dropout
from common.layers.linear import Linear
from projects.lazy_neuron import relative_position, t5_blocks


class _Stack(nnx.Module):
  """Layers plus their shared relative position bias and final norm."""

  def __init__(self, block_cls, *, d_model: int, num_heads: int, head_dim: int,
               d_ff: int, top_k: Sequence[int], bidirectional: bool,
               relative_buckets: int, relative_max_distance: int, norm_eps: float,
               remat_policy: str, dtype: Any, param_dtype: Any, rngs: nnx.Rngs, **block_kwargs):
    self.remat_policy = remat_policy
    self.relative_bias = relative_position.RelativePositionBias(
        num_heads, bidirectional=bidirectional, num_buckets=relative_buckets,
        max_distance=relative_max_distance, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.layers = nnx.List([
        block_cls(d_model, num_heads, head_dim, d_ff, top_k=k, norm_eps=norm_eps, dtype=dtype,
                  param_dtype=param_dtype, rngs=rngs, **block_kwargs)
        for k in top_k])
    self.norm = norms.RMSNorm(d_model, epsilon=norm_eps, dtype=dtype, param_dtype=param_dtype)
    self.dropout = Dropout(block_kwargs.get("dropout_rate", 0.0))

  def _run(self, x, apply_block, train, rngs):
    x = self.dropout(x, train=train, rngs=rngs)
    apply_block = remat.remat(apply_block, self.remat_policy)
    for block in self.layers:
      x = apply_block(block, x, rngs)
    return self.dropout(self.norm(x), train=train, rngs=rngs)


class T5Encoder(_Stack):

  def __call__(self, x: jax.Array, valid: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """x [B, Te, D] embedded tokens; valid [B, Te] bool (non-padding)."""
    bias = self.relative_bias(x.shape[1], x.shape[1])
    mask = attention.make_attention_mask(valid, valid)

    def apply_block(block, x, rngs):
      return block(x, position_bias=bias, mask=mask, token_mask=valid,
                   train=train, rngs=rngs)

    return self._run(x, apply_block, train, rngs)


class T5Decoder(_Stack):

  def __call__(self, x: jax.Array, encoded: jax.Array, encoder_valid: jax.Array,
               decoder_valid: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """x [B, Td, D] embedded decoder inputs; encoded [B, Te, D]; validity masks [B, Te], [B, Td]."""
    bias = self.relative_bias(x.shape[1], x.shape[1])
    cross_mask = attention.make_attention_mask(decoder_valid, encoder_valid)

    def apply_block(block, x, rngs):
      return block(x, encoded, position_bias=bias, cross_mask=cross_mask,
                   token_mask=decoder_valid, train=train, rngs=rngs)

    return self._run(x, apply_block, train, rngs)


class T5EncoderDecoder(nnx.Module):
  """(encoder tokens [B, Te], decoder input tokens [B, Td]) -> logits [B, Td, vocab], float32.

  Args:
    vocab_size, d_model, d_ff, num_heads, head_dim (d_kv), num_encoder_layers,
    num_decoder_layers: sizes.
    activation: MLP activation name; top_k: int for every MLP or a sequence with one entry per
      encoder layer followed by one per decoder layer (0 = off); topk_mode: see common.layers.topk.
    dropout_rate: one rate for residual, attention-weight, MLP-hidden and embedding dropout.
    relative_buckets, relative_max_distance: T5's 32 and 128.
    tie_embeddings: v1.0 shared input/output embedding with d_model^-0.5 logits scaling.
    remat_policy: a name from common.layers.remat.POLICIES, applied per block.
  """

  def __init__(self, *, vocab_size: int, d_model: int, d_ff: int, num_heads: int,
               head_dim: int, num_encoder_layers: int, num_decoder_layers: int,
               activation: str = "relu", top_k: int | Sequence[int] = 0,
               topk_mode: str = "threshold", dropout_rate: float = 0.0,
               relative_buckets: int = 32, relative_max_distance: int = 128,
               norm_eps: float = 1e-6, tie_embeddings: bool = True, remat_policy: str = "none",
               sow_activations: bool = False, dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    for field, value in (("vocab_size", vocab_size), ("d_model", d_model), ("d_ff", d_ff),
                         ("num_heads", num_heads), ("head_dim", head_dim),
                         ("num_encoder_layers", num_encoder_layers),
                         ("num_decoder_layers", num_decoder_layers)):
      validation.check_positive(field, value)
    remat.checkpoint_policy(remat_policy)  # validates the name
    top_ks = validation.per_layer("top_k", top_k, num_encoder_layers + num_decoder_layers)
    self.d_model = d_model
    self.tie_embeddings = tie_embeddings
    self.dtype = dtype
    self.embedding = nnx.Embed(
        vocab_size, d_model, dtype=dtype, param_dtype=param_dtype,
        embedding_init=nnx.with_partitioning(nnx.initializers.normal(1.0), ("vocab", "embed")),
        rngs=rngs)
    common_kwargs = dict(d_model=d_model, num_heads=num_heads, head_dim=head_dim, d_ff=d_ff,
                         relative_buckets=relative_buckets,
                         relative_max_distance=relative_max_distance, norm_eps=norm_eps,
                         remat_policy=remat_policy, dtype=dtype, param_dtype=param_dtype,
                         rngs=rngs, activation=activation, topk_mode=topk_mode,
                         dropout_rate=dropout_rate, sow_activations=sow_activations)
    self.encoder = T5Encoder(t5_blocks.T5EncoderBlock, top_k=top_ks[:num_encoder_layers],
                             bidirectional=True, **common_kwargs)
    self.decoder = T5Decoder(t5_blocks.T5DecoderBlock, top_k=top_ks[num_encoder_layers:],
                             bidirectional=False, **common_kwargs)
    self.logits_dense = None if tie_embeddings else Linear(
        d_model, vocab_size, use_bias=False, kernel_axes=("embed", "vocab"),
        kernel_init=t5_blocks.MLP_INIT, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

  def encode(self, encoder_input_tokens: jax.Array, *, train: bool = False,
             rngs: nnx.Rngs | None = None) -> jax.Array:
    valid = encoder_input_tokens > 0
    return self.encoder(self.embedding(encoder_input_tokens), valid,
                        train=train, rngs=rngs)

  def decode(self, encoded: jax.Array, encoder_input_tokens: jax.Array,
             decoder_input_tokens: jax.Array, *,
             decoder_target_tokens: jax.Array | None = None, train: bool = False,
             rngs: nnx.Rngs | None = None) -> jax.Array:
    decoder_valid = (jnp.ones(decoder_input_tokens.shape, bool) if decoder_target_tokens is None
                     else decoder_target_tokens > 0)
    y = self.decoder(self.embedding(decoder_input_tokens), encoded, encoder_input_tokens > 0,
                     decoder_valid, train=train, rngs=rngs)
    if self.logits_dense is not None:
      return self.logits_dense(y).astype(jnp.float32)
    logits = self.embedding.attend(y) * (self.d_model ** -0.5)
    return logits.astype(jnp.float32)

  def __call__(self, encoder_input_tokens: jax.Array, decoder_input_tokens: jax.Array, *,
               decoder_target_tokens: jax.Array | None = None, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    encoded = self.encode(encoder_input_tokens, train=train, rngs=rngs)
    return self.decode(encoded, encoder_input_tokens, decoder_input_tokens,
                       decoder_target_tokens=decoder_target_tokens,
                       train=train, rngs=rngs)
