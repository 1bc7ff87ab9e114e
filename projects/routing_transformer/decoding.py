"""Incremental decoding with a per-layer cache of q, k, v (TF `decode_step` semantics).

As the official code (`multihead_attention_nd` with `decode_step`): each step projects only
the newest token, writes its q, k, v into the layer's cache at position t, and runs attention
over the cache:

  local heads    query t against cached keys in [block_start(t) - flange, t]: identical to
                 the full forward at position t.
  routing heads  the clustered attention over the whole cache with the scores of positions
                 > t blanked (TF sets their cluster distance to 1e9), then the output at t.
                 Membership is therefore decided among positions <= t only; the training
                 forward lets all n positions compete, so the two agree at t = n - 1, and in
                 general equal the full forward on the prefix [0, t] (when that prefix is a
                 valid length) when routing is in the last layer only (the released PG-19
                 model). With routing in earlier layers, the cached q, k, v of later layers
                 were computed under past-only memberships, so decoding and the training
                 forward differ beyond the first routing layer; TF's cache has the same
                 property. Like TF, each step costs a full clustered attention.

The k-means state is read, never updated, while decoding (TF PREDICT mode).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from projects.routing_transformer import kmeans, routing_attention, window_attention
from projects.routing_transformer import model as model_lib


def init_cache(model: model_lib.RoutingTransformerLM, batch: int, max_len: int) -> list[dict]:
  """Zero q, k, v caches [B, H, max_len, d] per layer."""
  cache = []
  for layer in model.layers:
    a = layer.attention
    shape = (batch, a.num_local_heads + a.num_routing_heads, max_len, a.head_dim)
    cache.append({name: jnp.zeros(shape, jnp.float32) for name in ("q", "k", "v")})
  return cache


def _local_step(a, q_t, k, v, t):
  """q_t [B, Hl, 1, d] against cached k, v [B, Hl, n, d] under the local causal window."""
  n = k.shape[2]
  j = jnp.arange(n)
  mask = (j <= t) & (j >= (t // a.query_block) * a.query_block - a.memory_flange)
  rel = a.local_rel_k is not None
  rel_index = None
  if rel:
    m = a.max_relative_position
    rel_index = (jnp.clip(j - t, -m, m) + m)[None, :]
  return window_attention.attend(q_t, k, v, mask[None, :], rel_index=rel_index,
                                 rel_keys=a.local_rel_k[...] if rel else None,
                                 rel_values=a.local_rel_v[...] if rel else None)


def _routing_step(a, q, v, t):
  """Clustered attention over the cache with positions > t blanked; the output at t."""
  x = kmeans.layer_norm_no_params(q)
  scores, _ = kmeans.assign(x, a.means[...])
  n = q.shape[2]
  future = (jnp.arange(n) > t)[None, None, :, None]
  scores = jnp.where(future, -1e9, scores)
  o = a.routed(x, v, routing_attention.select_windows(scores, a.window))
  return jax.lax.dynamic_slice_in_dim(o, t, 1, axis=2)


def _attention_step(a, x_t, cache, t):
  b = x_t.shape[0]
  h, d = a.num_local_heads + a.num_routing_heads, a.head_dim
  split = lambda y: y.reshape(b, 1, h, d).transpose(0, 2, 1, 3)
  q_t = split(a.wq(x_t)) * d ** -0.5
  new = {"q": q_t, "k": split(a.wk(x_t)), "v": split(a.wv(x_t))}
  cache = {name: jax.lax.dynamic_update_slice_in_dim(cache[name], new[name].astype(jnp.float32),
                                                     t, axis=2) for name in cache}
  hr = a.num_routing_heads
  outs = []
  if hr:
    outs.append(_routing_step(a, cache["q"][:, :hr], cache["v"][:, :hr], t))
  if a.num_local_heads:
    outs.append(_local_step(a, q_t[:, hr:], cache["k"][:, hr:], cache["v"][:, hr:], t))
  o = a.head_mix(jnp.concatenate(outs, axis=1).astype(x_t.dtype))
  return a.wo(o.transpose(0, 2, 1, 3).reshape(b, 1, h * d)), cache


def decode_step(model: model_lib.RoutingTransformerLM, token: jax.Array, cache: list[dict],
                t) -> tuple[jax.Array, list[dict]]:
  """Logits [B, V] for the next token after `token` [B] at position t; returns the new cache."""
  x = model.embed_inputs(token[:, None], jnp.reshape(t, (1,)))
  new_cache = []
  for layer, layer_cache in zip(model.layers, cache):
    y, layer_cache = _attention_step(layer.attention, x, layer_cache, t)
    x = layer.norm1(x + y)
    x = layer.norm2(x + layer.ffn(x, train=False, rngs=None))
    new_cache.append(layer_cache)
  if model.final_dense_1 is not None:
    x = model.final_dense_1(x)
  return model.final_dense_2(x)[:, 0].astype(jnp.float32), new_cache


def decode_logits(model: model_lib.RoutingTransformerLM, tokens: jax.Array) -> jax.Array:
  """Teacher-forced incremental decoding of `tokens` [B, n]: logits [B, n, V] (a lax.scan)."""
  b, n = tokens.shape
  graphdef, state = nnx.split(model)

  def body(cache, inputs):
    t, token = inputs
    logits, cache = decode_step(nnx.merge(graphdef, state), token, cache, t)
    return cache, logits

  _, logits = jax.lax.scan(body, init_cache(model, b, n), (jnp.arange(n), tokens.T))
  return jnp.swapaxes(logits, 0, 1)


def sample(model: model_lib.RoutingTransformerLM, prompt: jax.Array, length: int, *,
           key: jax.Array, temperature: float = 1.0) -> jax.Array:
  """Continues `prompt` [B, p] to `length` tokens: int32 [B, length] (prompt included).

  One `decode_step` per position (a lax.scan), feeding the prompt's own next token while inside
  it and a draw from softmax(logits / temperature) after it; temperature 0 takes the argmax.
  Jit it with `nnx.jit(sample, static_argnames=('length', 'temperature'))`.
  """
  b, p = prompt.shape
  if not 1 <= p < length:
    raise ValueError(f"sample: the prompt has {p} tokens; it needs 1 <= prompt length < "
                     f"length={length}.")
  if temperature < 0:
    raise ValueError(f"sample: temperature={temperature} must be >= 0 (0 = greedy).")
  tokens = jnp.zeros((b, length), jnp.int32).at[:, :p].set(prompt.astype(jnp.int32))
  graphdef, state = nnx.split(model)

  def body(carry, t):
    cache, tokens, key = carry
    logits, cache = decode_step(nnx.merge(graphdef, state), tokens[:, t], cache, t)
    key, sub = jax.random.split(key)
    if temperature == 0:
      drawn = jnp.argmax(logits, axis=-1)
    else:
      drawn = jax.random.categorical(sub, logits / temperature, axis=-1)
    given = jax.lax.dynamic_index_in_dim(tokens, t + 1, axis=1, keepdims=False)
    nxt = jnp.where(t + 1 < p, given, drawn.astype(jnp.int32))
    tokens = jax.lax.dynamic_update_index_in_dim(tokens, nxt, t + 1, axis=1)
    return (cache, tokens, key), None

  init = (init_cache(model, b, length), tokens, key)
  (_, tokens, _), _ = jax.lax.scan(body, init, jnp.arange(length - 1))
  return tokens
