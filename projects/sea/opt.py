"""The OPT decoder (HF `OPTForCausalLM`, pre-LN variants) with dense or SEA attention per layer.

HF transformers `modeling_opt.py` for the configs with `do_layer_norm_before=True` and
`word_embed_proj_dim == hidden_size` (opt-125m, opt-1.3b and larger; not opt-350m):

  h = embed_tokens(ids) + embed_positions(arange(T) + 2)     (OPT's learned-position offset)
  per layer:  h += out_proj(attn(self_attn_layer_norm(h)))    q scaled by D^-1/2 before q k^T
              h += fc2(relu(fc1(final_layer_norm(h))))
  logits = final_layer_norm(h) @ embed_tokens^T              (tied LM head, no bias; or an
                                                              untied lm_head, config.py)

Layers listed in `OPTConfig.sea_layers` replace the softmax with SEAAttention on the same
q, k, v (the official `perlin_opt.py` replaces every layer), or, by
`OPTConfig.student_attention`, with the baselines of the CPU demo: 'performer' (SEA's causal
Performer on q, k, v alone) or 'local' (a causal sliding window of at most sea_k keys through
common.kernels.block_sparse_attention); see config.py. `student_attention_rows` gives the
attention distribution each kind actually applies (for the demo's attention KL).
`OPTOutput` carries what the distillation losses and users read: the HF-style hidden states
(input of every layer, then the final normalised output: L + 1 entries), and per layer q, k,
the context before out_proj, the dense scores (dense layers, on request) and the SEAOutput
(estimated attention, mask).

SEA's parameters live under '.../self_attn/sea/...', which is what the official two
learning-rate groups select (config.optimizer.lr_multipliers, see configs/opt.py).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common.kernels import block_sparse_attention as bsa
from common.layers import remat as remat_lib
from common.layers.attention import causal_attention
from common.layers.linear import Linear
from common.layers.mixers import band_blocks
from common.layers.norms import LayerNorm
from projects.sea import masks, sparse_attention
from projects.sea.attention import SEAAttention, SEAOutput
from projects.sea.config import LOCAL_BLOCKS_PER_WINDOW, OFFICIAL, OPTConfig, local_block
from projects.sea.performer import CausalPerformer, generalized_relu_features, nb_features_for

POSITION_OFFSET = 2  # HF OPTLearnedPositionalEmbedding: the table has max_positions + 2 rows
LN_EPS = 1e-5        # torch nn.LayerNorm default, as OPT uses
INIT_STD = 0.02      # HF OPTConfig.init_std


class LayerTrace(NamedTuple):
  """One attention layer's tensors, for distillation and inspection.

  q, k: [N, H, T, D] (q already scaled by D^-1/2); context: [N, T, H*D] before out_proj;
  scores: [N, H, T, T] raw q k^T (dense layers with return_scores=True, else None);
  sea: SEAOutput of a SEA layer (estimated attention S and P_hat, kept cells), else None.
  """
  q: jax.Array
  k: jax.Array
  context: jax.Array
  scores: jax.Array | None
  sea: SEAOutput | None


class OPTOutput(NamedTuple):
  logits: jax.Array                     # [N, T, V]
  hidden_states: tuple[jax.Array, ...]  # L + 1 entries of [N, T, d], as HF output_hidden_states
  layers: tuple[LayerTrace, ...]


def _linear(din, dout, axes, cfg, rngs):
  return Linear(din, dout, kernel_axes=axes, kernel_init=_matrix_init(cfg),
                bias_init=nnx.initializers.zeros, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                rngs=rngs)


def _matrix_init(cfg):
  # HF OPT init: N(0, init_std = 0.02) kernels, zero biases; or lecun normal (config.py).
  if cfg.matrix_init == "lecun":
    return nnx.initializers.lecun_normal()
  return nnx.initializers.normal(INIT_STD)


def _layer_norm(cfg):
  return LayerNorm(cfg.hidden_size, epsilon=LN_EPS, dtype=cfg.dtype, param_dtype=cfg.param_dtype)


def local_window_mask(seq_len: int, block: int) -> np.ndarray:
  """bool [T, T]: the keys the 'local' student reads (band of 8 blocks of `block`, causal)."""
  pos = np.arange(seq_len)
  qb, kb = pos[:, None] // block, pos[None, :] // block
  return (pos[None, :] <= pos[:, None]) & (kb >= qb - (LOCAL_BLOCKS_PER_WINDOW - 1))


class OPTAttention(nnx.Module):
  """q/k/v/out projections around dense causal softmax attention or a student attention.

  `kind`: 'dense' (layers outside sea_layers), else config.student_attention ('sea',
  'performer', 'local').
  """

  def __init__(self, cfg: OPTConfig, use_sea: bool, *, rngs: nnx.Rngs):
    d = cfg.hidden_size
    self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
    self.kind = cfg.student_attention if use_sea else "dense"
    self.q_proj = _linear(d, d, ("embed", "heads"), cfg, rngs)
    self.k_proj = _linear(d, d, ("embed", "heads"), cfg, rngs)
    self.v_proj = _linear(d, d, ("embed", "heads"), cfg, rngs)
    self.out_proj = _linear(d, d, ("heads", "embed"), cfg, rngs)
    sea = performer = None
    if self.kind == "performer":
      # No trained parameters: its random projection is a fixed buffer (PerformerProjection).
      performer = CausalPerformer(cfg.head_dim, nb_features_for(cfg.head_dim, cfg.sea_nb_factor),
                                  rngs=rngs)
    if self.kind == "local":
      self.local_block = local_block(cfg.sea_k)
      # 'official' names SEA's dense-mask reference; the band kernel's reference is 'reference'.
      self.local_impl = "reference" if cfg.attention_impl == OFFICIAL else cfg.attention_impl
    if self.kind == "sea":
      sea = SEAAttention(cfg.num_heads, cfg.head_dim, k=cfg.sea_k,
                         predictor_length=cfg.sea_predictor_length,
                         performer_nb_factor=cfg.sea_nb_factor,
                         max_position_embeddings=cfg.max_position_embeddings,
                         attention_impl=cfg.attention_impl, dtype=cfg.dtype,
                         param_dtype=cfg.param_dtype, rngs=rngs)
    self.sea = nnx.data(sea)
    self.performer = nnx.data(performer)

  def __call__(self, x: jax.Array, *, return_scores: bool = False):
    n, t, _ = x.shape
    heads = lambda y: y.reshape(n, t, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)
    q = heads(self.q_proj(x) * self.head_dim ** -0.5)
    k, v = heads(self.k_proj(x)), heads(self.v_proj(x))
    scores = sea_out = None
    if self.kind == "sea":
      sea_out = self.sea(q, k, v)
      context = sea_out.context
    elif self.kind == "performer":
      context = self.performer(q, k, v).astype(v.dtype)  # fp32 inside, as SEA runs it
      context = context.transpose(0, 2, 1, 3).reshape(n, t, -1)
    elif self.kind == "local":
      b = self.local_block
      if t % b:
        raise ValueError(f"sequence length {t} is not a multiple of the 'local' student's block "
                         f"{b} (= sea_k / {LOCAL_BLOCKS_PER_WINDOW}); use windows of a multiple.")
      blocks = band_blocks(t // b, LOCAL_BLOCKS_PER_WINDOW - 1)
      idx = jnp.broadcast_to(jnp.asarray(blocks), (n, self.num_heads) + blocks.shape)
      out = bsa.block_sparse_attention(q, k, v, idx, block_q=b, block_k=b, causal=True,
                                       scale=1.0, impl=self.local_impl)  # q is pre-scaled
      context = out.transpose(0, 2, 1, 3).reshape(n, t, -1)
    elif not return_scores:
      # Nobody reads the scores (LM training, evaluation): the exact chunked causal attention,
      # which skips most of the masked upper triangle (logits and softmax in fp32 there too).
      swap = lambda y: y.transpose(0, 2, 1, 3)
      context = causal_attention(swap(q), swap(k), swap(v), scale=1.0).reshape(n, t, -1)
    else:
      raw = jnp.einsum("bhqd,bhkd->bhqk", q, k)
      causal = jnp.tril(jnp.ones((t, t), bool))
      # Softmax in fp32, as HF upcasts half-precision attention weights.
      probs = jax.nn.softmax(jnp.where(causal, raw.astype(jnp.float32),
                                       jnp.finfo(jnp.float32).min), axis=-1)
      context = jnp.einsum("bhqk,bhkd->bqhd", probs.astype(v.dtype), v).reshape(n, t, -1)
      scores = raw if return_scores else None
    return self.out_proj(context), LayerTrace(q, k, context, scores, sea_out)


class OPTLayer(nnx.Module):
  """Pre-LN decoder layer (do_layer_norm_before=True), ReLU FFN."""

  def __init__(self, cfg: OPTConfig, use_sea: bool, *, rngs: nnx.Rngs):
    self.self_attn_layer_norm = _layer_norm(cfg)
    self.self_attn = OPTAttention(cfg, use_sea, rngs=rngs)
    self.final_layer_norm = _layer_norm(cfg)
    self.fc1 = _linear(cfg.hidden_size, cfg.ffn_dim, ("embed", "mlp"), cfg, rngs)
    self.fc2 = _linear(cfg.ffn_dim, cfg.hidden_size, ("mlp", "embed"), cfg, rngs)

  def __call__(self, h: jax.Array, *, return_scores: bool = False):
    out, trace = self.self_attn(self.self_attn_layer_norm(h), return_scores=return_scores)
    h = h + out
    h = h + self.fc2(jax.nn.relu(self.fc1(self.final_layer_norm(h))))
    return h, trace


class OPT(nnx.Module):
  """OPTForCausalLM: token ids [N, T] -> OPTOutput (logits, hidden states, layer traces)."""

  def __init__(self, cfg: OPTConfig, *, rngs: nnx.Rngs):
    self.config = cfg
    init = nnx.initializers.normal(INIT_STD)
    self.embed_tokens = nnx.Embed(
        cfg.vocab_size, cfg.hidden_size, dtype=cfg.dtype, param_dtype=cfg.param_dtype, rngs=rngs,
        embedding_init=nnx.with_partitioning(init, ("vocab", "embed")))
    self.embed_positions = nnx.Embed(
        cfg.max_position_embeddings + POSITION_OFFSET, cfg.hidden_size, dtype=cfg.dtype,
        param_dtype=cfg.param_dtype, rngs=rngs,
        embedding_init=nnx.with_partitioning(init, (None, "embed")))
    self.layers = nnx.List([OPTLayer(cfg, i in cfg.sea_layers, rngs=rngs)
                            for i in range(cfg.num_layers)])
    self.final_layer_norm = _layer_norm(cfg)
    # HF OPTForCausalLM.lm_head: tied to embed_tokens (every OPT checkpoint) or its own matrix.
    self.lm_head = nnx.data(None if cfg.tie_word_embeddings else Linear(
        cfg.hidden_size, cfg.vocab_size, use_bias=False, kernel_axes=("embed", "vocab"),
        kernel_init=_matrix_init(cfg), dtype=cfg.dtype, param_dtype=cfg.param_dtype, rngs=rngs))

  def __call__(self, tokens: jax.Array, *, return_scores: bool = False) -> OPTOutput:
    """tokens: int [N, T] with T <= max_position_embeddings (no padding: packed LM windows).

    return_scores: keep each dense layer's raw q k^T [N, H, T, T] (the teacher's, for
    distillation); costs T^2 memory per layer.
    """
    if tokens.ndim != 2:
      raise ValueError(f"tokens.shape={tokens.shape} is not allowed: expected [batch, length].")
    t = tokens.shape[1]
    if t > self.config.max_position_embeddings:
      raise ValueError(f"sequence length {t} > max_position_embeddings="
                       f"{self.config.max_position_embeddings}; use shorter windows.")
    h = self.embed_tokens(tokens) + self.embed_positions(jnp.arange(t) + POSITION_OFFSET)[None]
    hidden, traces = [], []
    call = remat_lib.remat(lambda layer, x: layer(x, return_scores=return_scores),
                           self.config.remat_policy)
    for layer in self.layers:
      hidden.append(h)
      h, trace = call(layer, h)
      traces.append(trace)
    h = self.final_layer_norm(h)
    hidden.append(h)
    logits = self.embed_tokens.attend(h) if self.lm_head is None else self.lm_head(h)
    return OPTOutput(logits, tuple(hidden), tuple(traces))


def student_attention_rows(attn: OPTAttention,
                           trace: LayerTrace) -> tuple[jax.Array, jax.Array | None]:
  """(probs, attended) of a student layer, fp32 [N, H, T, T] and bool [N, H, T, T] or None.

  probs: the attention distribution over keys the layer actually applies per query row:
    'sea': softmax of q k^T over its kept keys, 0 elsewhere (before the sigma(s0) gate and the
      mix with the running mean of v, which scale and blend the context, not the row);
    'local': softmax of q k^T over its window;
    'performer': the normalised linear-attention weights phi(q_i).phi(k_j) / sum_{j'<=i}
      phi(q_i).phi(k_j') (performer-pytorch's 1e-6 denominator term left out).
  attended: the keys each query reads (kept keys, the window); None for 'performer', which reads
  every causal key.
  """
  q, k = trace.q.astype(jnp.float32), trace.k.astype(jnp.float32)
  t = q.shape[-2]
  causal = jnp.tril(jnp.ones((t, t), bool))
  if attn.kind == "performer":
    projection = attn.performer.projection[...].astype(jnp.float32)
    w = jnp.einsum("bhqm,bhkm->bhqk", generalized_relu_features(q, projection),
                   generalized_relu_features(k, projection))
    w = jnp.where(causal, w, 0.0)
    return w / jnp.sum(w, axis=-1, keepdims=True), None
  if attn.kind == "sea":
    attended = masks.expand_keep_to_keys(trace.sea.mask_compressed_keep)
  elif attn.kind == "local":
    attended = jnp.broadcast_to(jnp.asarray(local_window_mask(t, attn.local_block)),
                                q.shape[:2] + (t, t))
  else:
    raise ValueError(f"layer kind {attn.kind!r} is not a student attention.")
  return sparse_attention.dense_masked_probs(q, k, attended).astype(jnp.float32), attended


def param_count(cfg: OPTConfig) -> int:
  """Parameters of `cfg`'s model from shapes only (nnx.eval_shape, nothing allocated)."""
  abstract = nnx.eval_shape(lambda: OPT(cfg, rngs=nnx.Rngs(0)))
  return int(sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param))))
