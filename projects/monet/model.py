"""MonetForCausalLM in Flax NNX: a LLaMA decoder whose MLPs are Monet mixtures of experts.

Official: dmis-lab/Monet@b5cb786 modeling_monet.py (`MonetDecoderLayer`, `MonetModel`,
`MonetForCausalLM`); spec shared/specs/experts.md §1.2 ([M:L231-266], [M:L403-411]). Per layer l:

  h = h + Attn(RMSNorm_in(h))
  u = RMSNorm_post(h)
  (g1, g2) = Router_l(u) if l % moe_groups == 0 else the last router's (g1, g2)
  h = h + Experts_l(u, g1, g2)

then a final RMSNorm and an untied LM head whose logits are float32.

Example:
  cfg = MonetConfig(vocab_size=256, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                    moe_dim=8, moe_heads=2, moe_experts=16, moe_topk=4, moe_groups=2)
  model = MonetForCausalLM(cfg, rngs=nnx.Rngs(0))
  # train=False (default): the routers use their running BN statistics; train=True uses the
  # batch's and updates the running ones.
  out = model(ids, labels=ids, output_router_probs=True, output_hidden_states=True)
  out.logits, out.loss, out.router_probs[0]  # (g1, g2) of layer 0, None at layers without router
"""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

from common.layers import remat
from common.layers.keys import KeyStream, param
from common.layers.norms import RMSNorm
from projects.monet.attention import DEFAULT_INIT, Attention
from projects.monet.config import MonetConfig
from projects.monet.experts import make_experts
from projects.monet.losses import causal_lm_loss
from projects.monet.router import MonetRouter

RouterProbs = tuple[jax.Array, jax.Array]


@flax.struct.dataclass
class KVCache:
  """Per-layer keys/values (B, S, kv_heads, head_dim) and the number of tokens written so far."""
  keys: tuple[jax.Array, ...]
  values: tuple[jax.Array, ...]
  index: jax.Array  # int32 scalar


@flax.struct.dataclass
class MonetOutput:
  """Model outputs (HF `MonetCausalLMOutputWithPast` without attentions).

  Attributes:
    logits: (B, T, vocab) float32.
    loss: shifted cross-entropy when labels are given, else None.
    hidden_states: with output_hidden_states, L+1 arrays (B, T, d): the embeddings, the residual
      stream after layers 0..L-2, and the final-RMSNorm output (HF convention: the last layer's raw
      output is not exposed).
    router_probs: with output_router_probs, one entry per layer: (g1, g2), each
      (B, T, moe_heads, moe_experts) float32, at router layers and None elsewhere.
    cache: the updated KVCache when one was passed.
  """
  logits: jax.Array
  loss: jax.Array | None = None
  hidden_states: tuple[jax.Array, ...] | None = None
  router_probs: tuple[RouterProbs | None, ...] | None = None
  cache: KVCache | None = None


def _rms_norm(cfg: MonetConfig) -> RMSNorm:
  """HF LlamaRMSNorm: normalise in float32, cast back, then weight * x (the wider dtype)."""
  return RMSNorm(cfg.hidden_size, epsilon=cfg.rms_norm_eps, cast_before_scale=True,
                 param_dtype=cfg.param_dtype)


class MonetDecoderLayer(nnx.Module):
  """Pre-norm attention + Monet MoE; owns a router only when layer % moe_groups == 0."""

  def __init__(self, cfg: MonetConfig, layer: int, *, rngs: nnx.Rngs):
    self.input_layernorm = _rms_norm(cfg)
    self.attn = Attention(cfg.hidden_size, cfg.num_attention_heads, cfg.kv_heads,
                          rope_theta=cfg.rope_theta, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                          rngs=rngs)
    self.post_attention_layernorm = _rms_norm(cfg)
    self.router = MonetRouter(cfg, rngs=rngs) if cfg.has_router(layer) else None
    self.moe = make_experts(cfg, rngs=rngs)

  def __call__(self, h, positions, previous: RouterProbs | None, *, mask=None, cache=None,
               cache_index=None, train: bool = False, rngs: nnx.Rngs | None = None):
    del rngs  # nothing random: Monet has no dropout
    dt = h.dtype
    attn_out, new_cache = self.attn(self.input_layernorm(h), positions, mask=mask, cache=cache,
                                    cache_index=cache_index)
    # Tagged for remat_policy='save_block_outputs' (common.layers.remat.BLOCK_OUTPUT_NAMES).
    h = h + checkpoint_name(attn_out, "attn_out").astype(dt)
    u = self.post_attention_layernorm(h)
    # The router sees this layer's post-attention-normed input; later layers of the group reuse its
    # (g1, g2) unchanged ([M:L250-254, L405-409]).
    probs = self.router(u, train=train) if self.router is not None else previous
    h = h + checkpoint_name(self.moe(u, *(probs or (None, None))), "mlp_out").astype(dt)
    return h, probs, new_cache


class MonetForCausalLM(nnx.Module):
  """The Monet causal LM (embeddings, decoder layers, final RMSNorm, untied LM head)."""

  def __init__(self, cfg: MonetConfig, *, rngs: nnx.Rngs):
    if not isinstance(cfg, MonetConfig):
      raise ValueError(f"cfg={type(cfg).__name__}: expected a MonetConfig.")
    self.config = cfg
    pd = cfg.param_dtype
    keys = KeyStream.of(rngs)
    self.embed_tokens = param(DEFAULT_INIT, ("vocab", "embed"), keys,
                              (cfg.vocab_size, cfg.hidden_size), pd)
    self.layers = nnx.List([MonetDecoderLayer(cfg, l, rngs=keys)
                            for l in range(cfg.num_hidden_layers)])
    self.norm = _rms_norm(cfg)
    self.lm_head = param(DEFAULT_INIT, ("embed", "vocab"), keys,
                         (cfg.hidden_size, cfg.vocab_size), pd)

  def init_cache(self, batch: int, max_len: int | None = None, dtype: Any = None) -> KVCache:
    """An empty KV cache for `batch` sequences of up to `max_len` tokens."""
    cfg = self.config
    max_len = cfg.max_position_embeddings if max_len is None else max_len
    shape = (batch, max_len, cfg.kv_heads, cfg.head_dim)
    dtype = cfg.dtype if dtype is None else dtype
    zeros = tuple(jnp.zeros(shape, dtype) for _ in range(cfg.num_hidden_layers))
    return KVCache(keys=zeros, values=zeros, index=jnp.zeros((), jnp.int32))

  def __call__(self, input_ids: jax.Array, *, labels: jax.Array | None = None,
               attention_mask: jax.Array | None = None, positions: jax.Array | None = None,
               cache: KVCache | None = None, output_hidden_states: bool = False,
               output_router_probs: bool = False, train: bool = False,
               rngs: nnx.Rngs | None = None) -> MonetOutput:
    """Runs the decoder.

    Args:
      input_ids: (B, T) int token ids.
      labels: optional (B, T) ids for the HF shifted cross-entropy (-100 = ignored).
      attention_mask: optional (B, T) key-padding mask (1 = token); not supported with a cache.
      positions: optional (B, T) positions; default arange (offset by the cache index).
      cache: optional KVCache from `init_cache`; the new tokens are appended at `cache.index`.
      output_hidden_states: return the L+1 hidden states (HF convention).
      output_router_probs: return the per-layer (g1, g2) (None at layers without router).
      train: the routers normalise with the batch's statistics and update their running ones;
        False (evaluation, decoding) uses the running statistics.
      rngs: unused (Monet draws nothing); accepted for the shared call convention.

    Returns:
      MonetOutput.
    """
    cfg = self.config
    if input_ids.ndim != 2:
      raise ValueError(f"input_ids.shape={input_ids.shape}: expected (batch, tokens).")
    b, t = input_ids.shape
    if cache is not None and attention_mask is not None:
      raise ValueError("attention_mask: padding masks are not supported together with a KV cache.")
    if attention_mask is not None and attention_mask.shape != (b, t):
      raise ValueError(f"attention_mask.shape={attention_mask.shape}: expected {(b, t)}.")
    if positions is None:
      start = jnp.zeros((), jnp.int32) if cache is None else cache.index
      positions = jnp.broadcast_to(start + jnp.arange(t, dtype=jnp.int32), (b, t))

    h = jnp.take(self.embed_tokens[...], input_ids, axis=0).astype(cfg.dtype)
    hidden, probs_per_layer, new_keys, new_values = [], [], [], []
    probs = None
    cache_index = None if cache is None else cache.index

    # Arrays go in as arguments (not closed over) so that remat sees every input it saves.
    def run_layer(layer, h, positions, probs, mask, layer_cache, cache_index):
      return layer(h, positions, probs, mask=mask, cache=layer_cache, cache_index=cache_index,
                   train=train)

    run_layer = remat.remat(run_layer, cfg.remat_policy)
    for l, layer in enumerate(self.layers):
      if output_hidden_states:
        hidden.append(h)
      layer_cache = None if cache is None else (cache.keys[l], cache.values[l])
      h, probs, layer_cache = run_layer(layer, h, positions, probs, attention_mask, layer_cache,
                                        cache_index)
      probs_per_layer.append(probs if layer.router is not None else None)
      if cache is not None:
        new_keys.append(layer_cache[0])
        new_values.append(layer_cache[1])
    h = self.norm(h)
    if output_hidden_states:
      hidden.append(h)

    dt = cfg.dtype
    logits = jnp.einsum("btd,dv->btv", h.astype(dt), self.lm_head[...].astype(dt))
    logits = logits.astype(jnp.float32)  # [M:L563-564] logits.float()
    new_cache = None
    if cache is not None:
      new_cache = KVCache(keys=tuple(new_keys), values=tuple(new_values), index=cache.index + t)
    return MonetOutput(
        logits=logits,
        loss=None if labels is None else causal_lm_loss(logits, labels),
        hidden_states=tuple(hidden) if output_hidden_states else None,
        router_probs=tuple(probs_per_layer) if output_router_probs else None,
        cache=new_cache)
