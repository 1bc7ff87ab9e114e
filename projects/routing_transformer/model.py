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

import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.layers import dtypes, norms, validation
from projects.routing_transformer import attention, input_embedding, local_attention

FFNS = ("geglu", "relu")
LN_EPS = 1e-6  # T2T layer_norm epsilon


def _dropout(x, rate: float, train: bool, rngs: nnx.Rngs | None):
  if not train or rate == 0.0:
    return x
  if rngs is None:
    raise ValueError(f"dropout rate {rate} in train mode needs `rngs` with a 'dropout' stream.")
  keep = jax.random.bernoulli(rngs.dropout(), 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


class FeedForward(nnx.Module):
  """TF `geglu` (no biases, tanh GELU) or `dense_relu_dense` (biases)."""

  def __init__(self, hidden: int, filter_size: int, *, kind: str, dropout: float, kernel_init,
               dtype: Any, param_dtype: Any, rngs: nnx.Rngs):
    validation.check_choice("config.model.ffn", kind, FFNS)
    bias = kind == "relu"

    def dense(n_in, n_out, axes):
      return nnx.Linear(n_in, n_out, use_bias=bias, dtype=dtype, param_dtype=param_dtype,
                        kernel_init=nnx.with_partitioning(kernel_init, axes),
                        bias_init=nnx.with_partitioning(nnx.initializers.zeros, (axes[1],)),
                        rngs=rngs)

    self.kind, self.dropout = kind, dropout
    self.w1 = dense(hidden, filter_size, ("embed", "mlp"))
    self.w2 = dense(hidden, filter_size, ("embed", "mlp")) if kind == "geglu" else None
    self.w3 = dense(filter_size, hidden, ("mlp", "embed"))

  def __call__(self, x, *, train: bool, rngs: nnx.Rngs | None):
    if self.kind == "geglu":
      h = jax.nn.gelu(self.w1(x), approximate=True) * self.w2(x)
    else:
      h = jax.nn.relu(self.w1(x))
    return self.w3(_dropout(h, self.dropout, train, rngs))


class DecoderBlock(nnx.Module):
  """Post-LN block: x = LN(x + drop(attn(x))); x = LN(x + drop(ffn(x)))."""

  def __init__(self, hidden: int, *, attn_kwargs: dict, filter_size: int, ffn: str,
               relu_dropout: float, residual_dropout: float, kernel_init, dtype: Any,
               param_dtype: Any, rngs: nnx.Rngs):
    self.residual_dropout = residual_dropout
    self.attention = attention.RoutingSelfAttention(
        hidden, kernel_init=kernel_init, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        **attn_kwargs)
    self.norm1 = norms.LayerNorm(hidden, epsilon=LN_EPS, dtype=dtype, param_dtype=param_dtype)
    self.ffn = FeedForward(hidden, filter_size, kind=ffn, dropout=relu_dropout,
                           kernel_init=kernel_init, dtype=dtype, param_dtype=param_dtype,
                           rngs=rngs)
    self.norm2 = norms.LayerNorm(hidden, epsilon=LN_EPS, dtype=dtype, param_dtype=param_dtype)

  def __call__(self, x, *, train: bool, rngs: nnx.Rngs | None):
    y, loss = self.attention(x, train=train, rngs=rngs)
    x = self.norm1(x + _dropout(y, self.residual_dropout, train, rngs))
    y = self.ffn(x, train=train, rngs=rngs)
    x = self.norm2(x + _dropout(y, self.residual_dropout, train, rngs))
    return x, loss


class RoutingTransformerLM(nnx.Module):
  """Decoder-only LM; `__call__(tokens [B, n], train=, rngs=) -> (logits [B, n, V], aux loss)`."""

  def __init__(self, *, vocab_size: int, embedding_dims: int, hidden: int, num_layers: int,
               filter_size: int, ffn: str, skip_first: int, attn_kwargs: dict,
               embedding_dropout: float, relu_dropout: float, residual_dropout: float,
               target_dropout: float, initializer_gain: float, positions: str = "none",
               image_shape: tuple[int, ...] = (), dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    # T2T `uniform_unit_scaling`: variance_scaling(gain, fan_avg, uniform) for every variable.
    init = nnx.initializers.variance_scaling(initializer_gain, "fan_avg", "uniform")
    self.target_dropout, self.embedding_dropout = target_dropout, embedding_dropout
    self.residual_dropout = residual_dropout
    self.positions = positions

    def dense(n_in, n_out, axes):
      return nnx.Linear(n_in, n_out, use_bias=True, dtype=dtype, param_dtype=param_dtype,
                        kernel_init=nnx.with_partitioning(init, axes),
                        bias_init=nnx.with_partitioning(nnx.initializers.zeros, (axes[1],)),
                        rngs=rngs)

    if positions == "learned_nd":
      self.pixels = input_embedding.PixelEmbedding(
          tuple(image_shape), hidden, kernel_init=init, dtype=dtype, param_dtype=param_dtype,
          rngs=rngs)
      self.embed = self.emb_dense = None
    else:
      self.pixels = None
      self.embed = nnx.Embed(vocab_size, embedding_dims, dtype=dtype, param_dtype=param_dtype,
                             embedding_init=nnx.with_partitioning(init, ("vocab", "embed")),
                             rngs=rngs)
      self.emb_dense = dense(embedding_dims, hidden, (None, "embed"))
    layers = []
    for i in range(num_layers):
      kw = dict(attn_kwargs)
      if i < skip_first:  # TF: these layers' routing heads become local heads
        kw["num_local_heads"] += kw["num_routing_heads"]
        kw["num_routing_heads"] = 0
      layers.append(DecoderBlock(hidden, attn_kwargs=kw, filter_size=filter_size, ffn=ffn,
                                 relu_dropout=relu_dropout, residual_dropout=residual_dropout,
                                 kernel_init=init, dtype=dtype, param_dtype=param_dtype,
                                 rngs=rngs))
    self.layers = nnx.List(layers)
    self.final_dense_1 = dense(hidden, embedding_dims, ("embed", None)) \
        if hidden != embedding_dims else None
    self.final_dense_2 = dense(embedding_dims, vocab_size, (None, "vocab"))

  def __call__(self, tokens: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> tuple[jax.Array, jax.Array]:
    if train and self.target_dropout > 0:
      if rngs is None:
        raise ValueError("target_dropout in train mode needs `rngs` with a 'dropout' stream.")
      drop = jax.random.bernoulli(rngs.dropout(), self.target_dropout, tokens.shape)
      tokens = jnp.where(drop, 0, tokens)
    x = self.embed_inputs(tokens, jnp.arange(tokens.shape[1]), train=train, rngs=rngs)
    aux = jnp.zeros((), jnp.float32)
    for layer in self.layers:
      x, loss = layer(x, train=train, rngs=rngs)
      aux = aux + loss  # TF: tf.add_n over layers (a sum, not a mean)
    if self.final_dense_1 is not None:
      x = self.final_dense_1(x)
    return self.final_dense_2(x).astype(jnp.float32), aux

  def embed_inputs(self, tokens: jax.Array, positions: jax.Array, *, train: bool = False,
                   rngs: nnx.Rngs | None = None) -> jax.Array:
    """tokens [B, n] at sequence `positions` [n] -> decoder input [B, n, hidden] (also used by
    decoding.py, one position at a time)."""
    if self.pixels is not None:
      x = _dropout(self.pixels(tokens, positions), self.embedding_dropout, train, rngs)
    else:
      x = _dropout(self.embed(tokens), self.embedding_dropout, train, rngs)
      x = self.emb_dense(x)
      if self.positions == "sinusoidal":
        x = x + input_embedding.timing_signal(positions, x.shape[-1]).astype(x.dtype)[None]
    return _dropout(x, self.residual_dropout, train, rngs)  # TF: decoder input dropout


def attention_kwargs(m: ml_collections.ConfigDict) -> dict:
  """The per-layer attention fields of config.model, checked."""
  num_heads = m.num_local_heads + m.num_routing_heads
  validation.check_positive("config.model.num_local_heads + num_routing_heads", num_heads)
  validation.check_divides("config.model.hidden_size", m.hidden_size,
                           "config.model.num_local_heads + num_routing_heads", num_heads)
  return dict(num_local_heads=m.num_local_heads, num_routing_heads=m.num_routing_heads,
              head_dim=m.hidden_size // num_heads, num_clusters=m.num_clusters,
              window=m.window, query_block=m.query_block, memory_flange=m.memory_flange,
              local_relative=m.local_relative, routing_relative=m.routing_relative,
              max_relative_position=m.max_relative_position,
              attention_dropout=m.attention_dropout, decay=m.kmeans_decay, beta=m.beta,
              impl=m.attention_impl, kernel_impl=m.kernel_impl)


def check_config(config: ml_collections.ConfigDict, seq_len: int) -> None:
  """Raises ValueError naming the config.model field for shapes the model cannot take."""
  m = config.model
  for field in ("vocab_size", "embedding_dims", "hidden_size", "num_layers", "filter_size"):
    validation.check_positive(f"config.model.{field}", m[field])
  for field in ("num_local_heads", "num_routing_heads", "skip_first", "memory_flange",
                "max_relative_position"):
    if isinstance(m[field], bool) or not isinstance(m[field], int) or m[field] < 0:
      raise ValueError(f"config.model.{field}={m[field]!r} must be a non-negative integer.")
  for field in ("attention_dropout", "relu_dropout", "embedding_dropout", "residual_dropout",
                "target_dropout"):
    validation.check_rate(f"config.model.{field}", m[field])
  validation.check_choice("config.model.attention_impl", m.attention_impl, attention.IMPLS)
  check_inputs(m)
  if m.num_local_heads + (m.num_routing_heads if m.skip_first > 0 else 0) > 0:
    local_attention.check_blocks(seq_len, m.query_block, m.memory_flange)
  if m.num_routing_heads and m.skip_first < m.num_layers:
    validation.check_positive("config.model.num_clusters", m.num_clusters)
    validation.check_positive("config.model.window", m.window)
    if m.window > seq_len:
      raise ValueError(f"config.model.window={m.window} must be <= the sequence length "
                       f"{seq_len} (each cluster takes its top-window positions).")
    if m.attention_impl == "kernel" and (m.routing_relative or m.attention_dropout):
      raise ValueError("config.model.attention_impl='kernel' cannot express relative positions "
                       "or attention dropout; use 'auto' or 'windowed'.")
    if not 0.0 < m.kmeans_decay < 1.0:
      raise ValueError(f"config.model.kmeans_decay={m.kmeans_decay} must lie in (0, 1).")


def sequence_length(config: ml_collections.ConfigDict) -> int:
  """Tokens per example: H*W*C for the pixel LM (image data has no seq_len), else data.seq_len."""
  if config.model.get("positions", "none") == "learned_nd":
    check_inputs(config.model)
    return math.prod(config.model.image_shape)
  return config.data.seq_len


def check_inputs(m: ml_collections.ConfigDict) -> None:
  """config.model.positions / image_shape against the vocabulary and the width."""
  positions = m.get("positions", "none")
  validation.check_choice("config.model.positions", positions, input_embedding.POSITIONS)
  image_shape = tuple(m.get("image_shape", ()))
  if positions != "learned_nd":
    if image_shape:
      raise ValueError(f"config.model.image_shape={image_shape} is only read with "
                       "positions='learned_nd' (the pixel LM); set positions='learned_nd' or "
                       "image_shape=().")
    return
  if len(image_shape) != 3 or any(not isinstance(s, int) or s <= 0 for s in image_shape):
    raise ValueError(f"config.model.image_shape={image_shape!r} must be (height, width, "
                     "channels) of positive ints for positions='learned_nd'.")
  if m.vocab_size != input_embedding.PIXEL_VALUES:
    raise ValueError(f"config.model.vocab_size={m.vocab_size} must be "
                     f"{input_embedding.PIXEL_VALUES} for the pixel LM (one class per intensity).")
  if m.embedding_dims != m.hidden_size:
    raise ValueError(f"config.model.embedding_dims={m.embedding_dims} must equal hidden_size="
                     f"{m.hidden_size} for the pixel LM (TF embeds pixels at the model width).")


def build_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> RoutingTransformerLM:
  """RoutingTransformerLM from config.model (fields documented in configs/paper.py)."""
  m = config.model
  check_config(config, sequence_length(config))
  return RoutingTransformerLM(
      vocab_size=m.vocab_size, embedding_dims=m.embedding_dims, hidden=m.hidden_size,
      num_layers=m.num_layers, filter_size=m.filter_size, ffn=m.ffn, skip_first=m.skip_first,
      attn_kwargs=attention_kwargs(m), embedding_dropout=m.embedding_dropout,
      relu_dropout=m.relu_dropout, residual_dropout=m.residual_dropout,
      target_dropout=m.target_dropout, initializer_gain=m.initializer_gain,
      positions=m.get("positions", "none"), image_shape=tuple(m.get("image_shape", ())),
      dtype=dtypes.resolve_dtype(m.dtype, "config.model.dtype"),
      param_dtype=dtypes.resolve_dtype(m.param_dtype, "config.model.param_dtype"), rngs=rngs)
