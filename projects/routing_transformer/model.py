"""The Routing Transformer decoder LM (TF `sparse_transformer.py::SparseTransformer`, text body).

  tokens --(train: target dropout, ids -> 0 with prob p)--> Embed [V, emb] (no sqrt(d) scale)
    -> dropout(embedding_dropout) -> Dense(emb -> hidden, bias)           ("emb_dense")
    -> dropout(residual_dropout)                                         (decoder input dropout)
    -> L x post-LN blocks:  x = LN(x + drop(MHA(x)));  x = LN(x + drop(FFN(x)))   (T2T "dan")
    -> Dense(hidden -> emb, bias) if they differ -> Dense(emb -> V, bias)   (not tied: the TF body
       never reads shared_embedding_and_softmax_weights)

Positions (config.model.positions, input_embedding.py): 'none' = the official text body (no
absolute positions; only the Shaw relative attention knows about order), 'sinusoidal' = a T2T
timing signal added after emb_dense (our choice for relative-position-free CPU runs),
'learned_nd' = the official image body: `PixelEmbedding` (per-channel pixel embeddings and
learned n-d positions) replaces Embed + emb_dense (TF `SparseImagetransformer.prepare_decoder`).
Layers below `skip_first` have only local heads (TF: local_heads += cluster_heads there).
FFN: 'geglu' = (gelu_tanh(x W1) * x W2) W3 without biases (text), 'relu' = dense-relu-dense with
biases (images). `__call__` returns (logits, summed clustering loss over layers).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.layers import norms
from common.layers import remat as remat_lib
from common.layers.dropout import dropout
from common.layers.linear import Linear
from common.layers.mlp import Mlp
from projects.routing_transformer import attention, input_embedding
from projects.routing_transformer.config import RoutingTransformerConfig

LN_EPS = 1e-6  # T2T layer_norm epsilon
# TF `geglu` (tanh GELU, no biases) and `dense_relu_dense` (biases) as common.layers.mlp kinds.
FFN_ACTIVATIONS = {"geglu": "geglu_tanh", "relu": "relu"}


def feed_forward(cfg: RoutingTransformerConfig, kernel_init, rngs: nnx.Rngs) -> Mlp:
  """TF `geglu` = (gelu_tanh(x w1) * x w2) w3 without biases; `dense_relu_dense` = relu(x w1) w3
  with biases; dropout (relu_dropout) on the hidden units."""
  return Mlp(cfg.hidden_size, cfg.filter_size, activation=FFN_ACTIVATIONS[cfg.ffn],
             use_bias=cfg.ffn == "relu", dropout_rate=cfg.relu_dropout, kernel_init=kernel_init,
             layer_names=("w1", "w2", "w3"), dtype=cfg.dtype, param_dtype=cfg.param_dtype,
             sow_stats=False, rngs=rngs)


def attention_kwargs(cfg: RoutingTransformerConfig) -> dict:
  """The per-layer attention settings of the model config."""
  return dict(num_local_heads=cfg.num_local_heads, num_routing_heads=cfg.num_routing_heads,
              head_dim=cfg.head_dim, num_clusters=cfg.num_clusters, window=cfg.window,
              query_block=cfg.query_block, memory_flange=cfg.memory_flange,
              local_relative=cfg.local_relative, routing_relative=cfg.routing_relative,
              max_relative_position=cfg.max_relative_position,
              routing_mask_self=cfg.routing_mask_self,
              routing_scale_logits=cfg.routing_scale_logits,
              attention_dropout=cfg.attention_dropout, decay=cfg.kmeans_decay, beta=cfg.beta,
              attention_impl=cfg.attention_impl)


class DecoderBlock(nnx.Module):
  """Post-LN block: x = LN(x + drop(attn(x))); x = LN(x + drop(ffn(x)))."""

  def __init__(self, cfg: RoutingTransformerConfig, *, attn_kwargs: dict, kernel_init,
               rngs: nnx.Rngs):
    hidden, dtype, param_dtype = cfg.hidden_size, cfg.dtype, cfg.param_dtype
    self.residual_dropout = cfg.residual_dropout
    self.attention = attention.RoutingSelfAttention(
        hidden, kernel_init=kernel_init, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        **attn_kwargs)
    self.norm1 = norms.LayerNorm(hidden, epsilon=LN_EPS, dtype=dtype, param_dtype=param_dtype)
    self.ffn = feed_forward(cfg, kernel_init, rngs)
    self.norm2 = norms.LayerNorm(hidden, epsilon=LN_EPS, dtype=dtype, param_dtype=param_dtype)

  def __call__(self, x, *, train: bool = False, rngs: nnx.Rngs | None = None):
    y, loss = self.attention(x, train=train, rngs=rngs)
    x = self.norm1(x + dropout(y, self.residual_dropout, train=train, rngs=rngs))
    y = self.ffn(x, train=train, rngs=rngs)
    x = self.norm2(x + dropout(y, self.residual_dropout, train=train, rngs=rngs))
    return x, loss


class RoutingTransformerLM(nnx.Module):
  """Decoder-only LM; `__call__(tokens [B, n], train=, rngs=) -> (logits [B, n, V], aux loss)`."""

  def __init__(self, cfg: RoutingTransformerConfig, *, rngs: nnx.Rngs):
    # T2T `uniform_unit_scaling`: variance_scaling(gain, fan_avg, uniform) for every variable.
    init = nnx.initializers.variance_scaling(cfg.initializer_gain, "fan_avg", "uniform")
    dtype, param_dtype = cfg.dtype, cfg.param_dtype
    self.target_dropout, self.embedding_dropout = cfg.target_dropout, cfg.embedding_dropout
    self.residual_dropout = cfg.residual_dropout
    self.positions = cfg.positions
    self.remat_policy = cfg.remat_policy

    def dense(n_in, n_out, axes):
      return Linear(n_in, n_out, kernel_axes=axes, kernel_init=init,
                    bias_init=nnx.initializers.zeros, dtype=dtype, param_dtype=param_dtype,
                    rngs=rngs)

    if cfg.positions == "learned_nd":
      self.pixels = input_embedding.PixelEmbedding(
          tuple(cfg.image_shape), cfg.hidden_size, kernel_init=init, dtype=dtype,
          param_dtype=param_dtype, rngs=rngs)
      self.embed = self.emb_dense = None
    else:
      self.pixels = None
      self.embed = nnx.Embed(cfg.vocab_size, cfg.embedding_dims, dtype=dtype,
                             param_dtype=param_dtype,
                             embedding_init=nnx.with_partitioning(init, ("vocab", "embed")),
                             rngs=rngs)
      self.emb_dense = dense(cfg.embedding_dims, cfg.hidden_size, (None, "embed"))
    layers = []
    for i in range(cfg.num_layers):
      kw = attention_kwargs(cfg)
      if i < cfg.skip_first:  # TF: these layers' routing heads become local heads
        kw["num_local_heads"] += kw["num_routing_heads"]
        kw["num_routing_heads"] = 0
      layers.append(DecoderBlock(cfg, attn_kwargs=kw, kernel_init=init, rngs=rngs))
    self.layers = nnx.List(layers)
    self.final_dense_1 = dense(cfg.hidden_size, cfg.embedding_dims, ("embed", None)) \
        if cfg.hidden_size != cfg.embedding_dims else None
    self.final_dense_2 = dense(cfg.embedding_dims, cfg.vocab_size, (None, "vocab"))

  def __call__(self, tokens: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> tuple[jax.Array, jax.Array]:
    if train and self.target_dropout > 0:
      if rngs is None:
        raise ValueError("target_dropout in train mode needs `rngs` with a 'dropout' stream.")
      drop = jax.random.bernoulli(rngs.dropout(), self.target_dropout, tokens.shape)
      tokens = jnp.where(drop, 0, tokens)
    x = self.embed_inputs(tokens, jnp.arange(tokens.shape[1]), train=train, rngs=rngs)
    aux = jnp.zeros((), jnp.float32)
    block = remat_lib.remat(lambda layer, x, rngs: layer(x, train=train, rngs=rngs),
                            self.remat_policy)
    for layer in self.layers:
      x, loss = block(layer, x, rngs)
      aux = aux + loss  # TF: tf.add_n over layers (a sum, not a mean)
    if self.final_dense_1 is not None:
      x = self.final_dense_1(x)
    return self.final_dense_2(x).astype(jnp.float32), aux

  def embed_inputs(self, tokens: jax.Array, positions: jax.Array, *, train: bool = False,
                   rngs: nnx.Rngs | None = None) -> jax.Array:
    """tokens [B, n] at sequence `positions` [n] -> decoder input [B, n, hidden] (also used by
    decoding.py, one position at a time)."""
    rate = self.embedding_dropout
    if self.pixels is not None:
      x = dropout(self.pixels(tokens, positions), rate, train=train, rngs=rngs)
    else:
      x = dropout(self.embed(tokens), rate, train=train, rngs=rngs)
      x = self.emb_dense(x)
      if self.positions == "sinusoidal":
        x = x + input_embedding.timing_signal(positions, x.shape[-1]).astype(x.dtype)[None]
    # TF: decoder input dropout
    return dropout(x, self.residual_dropout, train=train, rngs=rngs)
