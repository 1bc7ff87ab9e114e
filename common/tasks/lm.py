"""The language-modelling family: what every LM task (moex, monet, routing_transformer, sea) shares.

Batches are common.data's packed 'lm' format: 'inputs', 'targets' int32 [B, T] (the data layer
has already shifted the targets) and 'weights' float32 [B, T] (0 on padding tokens); padded
evaluation batches also carry 'mask' [B] (0 for padding examples).

Metrics: a task reports the per-token cross-entropy as 'ce' (nats) and its perplexity as 'ppl';
the 'loss' evaluator then gives ppl = exp(mean ce) over a split (common/eval/task_loss.py), not
the biased mean of per-batch perplexities.

Sampling (`main.py --mode=sample` -> `Task.sample`): `continue_prompt` tokenises the prompt with
the data config's tokenizer, checks the model's length limit, runs the project's decoder and
returns the text.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp


def token_weights(batch: Mapping[str, Any]) -> jax.Array:
  """float32 [B, T]: the data layer's per-token weights times the padding-example mask."""
  w = batch["weights"].astype(jnp.float32)
  if "mask" in batch:  # padded evaluation batches: whole examples of weight 0
    w = w * batch["mask"].astype(jnp.float32)[:, None]
  return w


def cross_entropy(logits: jax.Array, targets: jax.Array,
                  weights: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(weighted mean cross-entropy in nats, weighted argmax accuracy) over the tokens.

  Computed in float32; the denominator is max(sum(weights), 1), so a batch without a single
  weighted token gives 0 rather than NaN.
  """
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
  total = jnp.maximum(jnp.sum(weights), 1.0)
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  return jnp.sum(nll * weights) / total, jnp.sum(correct * weights) / total


def continue_prompt(data_config, prompt: str, *, num_tokens: int, max_len: int,
                    generate: Callable[[jax.Array], jax.Array]) -> str:
  """`prompt` continued by `generate(ids [1, n]) -> ids [1, n + num_tokens]`, as text.

  The prompt is tokenised by `data_config`'s tokenizer (common.data.tokenizers); prompt plus
  `num_tokens` must fit the model's `max_len` tokens.
  """
  from common.data import tokenizers  # pylint: disable=g-import-not-at-top
  tok = tokenizers.from_config(data_config)
  ids = tok.encode(prompt)[None]
  length = ids.shape[1] + num_tokens
  if length > max_len:
    raise ValueError(f"--prompt ({ids.shape[1]} tokens) + --num_tokens={num_tokens} = {length} "
                     f"exceeds the model's sequence length {max_len}; shorten one of them.")
  out = generate(jnp.asarray(ids))
  return tok.decode(jax.device_get(out)[0].tolist())
