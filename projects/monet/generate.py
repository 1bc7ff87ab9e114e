"""Greedy decoding with the KV cache, compiled as one jit (prefill, then a fori_loop of steps).

The model runs with train=False (the default), so the routers use their running statistics: a
one-token decode step routes exactly as the full forward does.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from projects.monet.model import MonetForCausalLM


def greedy_generate(model: MonetForCausalLM, prompt: jax.Array, max_new_tokens: int) -> jax.Array:
  """Appends `max_new_tokens` argmax tokens to `prompt` (B, T); returns (B, T + max_new_tokens)."""
  if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
    raise ValueError(f"max_new_tokens={max_new_tokens!r}: must be a positive int.")
  if prompt.ndim != 2:
    raise ValueError(f"prompt.shape={prompt.shape}: expected (batch, tokens).")
  total = prompt.shape[1] + max_new_tokens
  if total > model.config.max_position_embeddings:
    raise ValueError(f"prompt length + max_new_tokens={total}: exceeds max_position_embeddings="
                     f"{model.config.max_position_embeddings}.")
  graphdef, state = nnx.split(model)
  return _generate(graphdef, state, jnp.asarray(prompt, jnp.int32), max_new_tokens)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _generate(graphdef, state, prompt, max_new_tokens):
  model = nnx.merge(graphdef, state)
  b, t = prompt.shape
  out = model(prompt, cache=model.init_cache(b, t + max_new_tokens))
  tokens = jnp.zeros((b, max_new_tokens), jnp.int32)
  tokens = tokens.at[:, 0].set(jnp.argmax(out.logits[:, -1], axis=-1).astype(jnp.int32))

  def step(i, carry):
    tokens, cache = carry
    last = jax.lax.dynamic_slice_in_dim(tokens, i - 1, 1, axis=1)
    out = model(last, cache=cache)
    tokens = tokens.at[:, i].set(jnp.argmax(out.logits[:, -1], axis=-1).astype(jnp.int32))
    return tokens, out.cache

  tokens, _ = jax.lax.fori_loop(1, max_new_tokens, step, (tokens, out.cache))
  return jnp.concatenate([prompt, tokens], axis=1)
