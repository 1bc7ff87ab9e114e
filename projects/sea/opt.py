"""The OPT decoder (HF `OPTForCausalLM`, pre-LN variants) with dense or SEA attention per layer.

HF transformers `modeling_opt.py` for the configs with `do_layer_norm_before=True` and
`word_embed_proj_dim == hidden_size` (opt-125m, opt-1.3b and larger; not opt-350m):

  h = embed_tokens(ids) + embed_positions(arange(T) + 2)     (OPT's learned-position offset)
  per layer:  h += out_proj(attn(self_attn_layer_norm(h)))    q scaled by D^-1/2 before q k^T
              h += fc2(relu(fc1(final_layer_norm(h))))
  logits = final_layer_norm(h) @ embed_tokens^T              (tied LM head, no bias)

Layers listed in `OPTConfig.sea_layers` replace the softmax with SEAAttention on the same
q, k, v (the official `perlin_opt.py` replaces every layer). `OPTOutput` carries what the
distillation losses and users read: the HF-style hidden states (input of every layer, then the
final normalised output: L + 1 entries), and per layer q, k, the context before out_proj, the
dense scores (dense layers, on request) and the SEAOutput (estimated attention, mask).

SEA's parameters live under '.../self_attn/sea/...', which is what the official two
learning-rate groups select (config.optimizer.lr_multipliers, see configs/opt.py).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from common.layers import remat as remat_lib
from common.layers.linear import Linear
from common.layers.norms import LayerNorm
from projects.sea.attention import SEAAttention, SEAOutput
from projects.sea.config import OPTConfig

POSITION_OFFSET = 2  # HF OPTLearnedPositionalEmbedding: the table has max_positions + 2 rows
LN_EPS = 1e-5        # torch nn.LayerNorm default, as OPT uses


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
  # HF OPT init: N(0, init_std 0.02) kernels, zero biases.
  return Linear(din, dout, kernel_axes=axes, kernel_init=nnx.initializers.normal(0.02),
                bias_init=nnx.initializers.zeros, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                rngs=rngs)


def _layer_norm(cfg):
  return LayerNorm(cfg.hidden_size, epsilon=LN_EPS, dtype=cfg.dtype, param_dtype=cfg.param_dtype)


class OPTAttention(nnx.Module):
  """q/k/v/out projections around dense causal softmax attention or SEAAttention."""

  def __init__(self, cfg: OPTConfig, use_sea: bool, *, rngs: nnx.Rngs):
    d = cfg.hidden_size
    self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
    self.q_proj = _linear(d, d, ("embed", "heads"), cfg, rngs)
    self.k_proj = _linear(d, d, ("embed", "heads"), cfg, rngs)
    self.v_proj = _linear(d, d, ("embed", "heads"), cfg, rngs)
    self.out_proj = _linear(d, d, ("heads", "embed"), cfg, rngs)
    sea = None
    if use_sea:
      sea = SEAAttention(cfg.num_heads, cfg.head_dim, k=cfg.sea_k,
                         predictor_length=cfg.sea_predictor_length,
                         performer_nb_factor=cfg.sea_nb_factor,
                         max_position_embeddings=cfg.max_position_embeddings,
                         attention_impl=cfg.attention_impl, dtype=cfg.dtype,
                         param_dtype=cfg.param_dtype, rngs=rngs)
    self.sea = nnx.data(sea)

  def __call__(self, x: jax.Array, *, return_scores: bool = False):
    n, t, _ = x.shape
    heads = lambda y: y.reshape(n, t, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)
    q = heads(self.q_proj(x) * self.head_dim ** -0.5)
    k, v = heads(self.k_proj(x)), heads(self.v_proj(x))
    scores = sea_out = None
    if self.sea is not None:
      sea_out = self.sea(q, k, v)
      context = sea_out.context
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
    init = nnx.initializers.normal(0.02)  # HF init_std
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
    logits = self.embed_tokens.attend(h)
    return OPTOutput(logits, tuple(hidden), tuple(traces))


def param_count(cfg: OPTConfig) -> int:
  """Parameters of `cfg`'s model from shapes only (nnx.eval_shape, nothing allocated)."""
  abstract = nnx.eval_shape(lambda: OPT(cfg, rngs=nnx.Rngs(0)))
  return int(sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param))))
