"""The Monet Task: causal LM on packed {'inputs','targets','weights'} batches plus routing losses.

  loss = CE(logits, targets; weights) + unif_weight * L_unif + amb_weight * L_amb

with the paper's eq. 16-18 auxiliary losses (projects/monet/losses.py; lambda = 1e-3 for both,
paper App. B.1). The data layer already shifts the targets, so the CE here is unshifted (the
model's own `labels=` path is HF's shifted loss, kept for the golden tests).

The router BatchNorm running statistics are `nnx.BatchStat`: the trainer carries them in
state['model_state'], puts the model in train mode for the step (batch statistics, running stats
updated inside the forward) and in eval mode for evaluation (running stats).

Metrics (all scalars; routing ones averaged over sub-routers and router layers):
  ce, ppl, accuracy          next-token cross-entropy (nats), exp(ce), argmax accuracy
  uniformity, ambiguity      the auxiliary losses (uniformity = log E for uniform expert usage)
  routing/usage_entropy      entropy (nats) of the token-averaged routing distribution, <= log E
  routing/token_entropy      mean per-token entropy of g (0 = one expert per head)
  routing/selected           mean number of experts selected per (token, head); ~moe_topk when
                             the BN threshold is calibrated
  routing/utilisation        fraction of experts selected by at least one real token of the batch
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from common.eval import task_loss
from common.train import task as task_lib
from projects.monet import losses, model_config
from projects.monet.model import MonetForCausalLM


def token_weights(batch: task_lib.Batch) -> jax.Array:
  """(B, T) float weights: the data layer's per-token weights times the padding mask."""
  w = batch["weights"].astype(jnp.float32)
  if "mask" in batch:  # padded evaluation batches: whole examples of weight 0
    w = w * batch["mask"].astype(jnp.float32)[:, None]
  return w


def cross_entropy(logits: jax.Array, targets: jax.Array, weights: jax.Array
                  ) -> tuple[jax.Array, jax.Array]:
  """(weighted mean CE, weighted accuracy) of unshifted targets."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
  total = jnp.maximum(jnp.sum(weights), 1.0)
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  return jnp.sum(nll * weights) / total, jnp.sum(correct * weights) / total


def routing_metrics(router_probs, weights: jax.Array) -> dict[str, jax.Array]:
  """Usage/token entropies, selected count and utilisation (see the module docstring)."""
  total = jnp.maximum(jnp.sum(weights), 1.0)
  out = {"usage_entropy": [], "token_entropy": [], "selected": [], "utilisation": []}
  for pair in router_probs:
    if pair is None:
      continue
    for g in pair:
      g = g.astype(jnp.float32)
      mean = jnp.einsum("bthe,bt->he", g, weights) / total
      out["usage_entropy"].append(jnp.mean(-jnp.sum(mean * jnp.log(mean + 1e-9), axis=-1)))
      tok = -jnp.sum(jnp.where(g > 0, g * jnp.log(jnp.where(g > 0, g, 1.0)), 0.0), axis=-1)
      out["token_entropy"].append(jnp.sum(jnp.mean(tok, -1) * weights) / total)
      chosen = (g > 0).astype(jnp.float32)
      out["selected"].append(jnp.sum(jnp.mean(jnp.sum(chosen, -1), -1) * weights) / total)
      used = jnp.einsum("bthe,bt->he", chosen, weights) > 0
      out["utilisation"].append(jnp.mean(used.astype(jnp.float32)))
  return {f"routing/{k}": jnp.mean(jnp.stack(v)) for k, v in out.items()}


class _WithPerplexity:
  """TaskLoss on one split, plus ppl = exp(mean CE): the mean of per-batch ppl would be biased."""

  def __init__(self, split: str):
    self.split = split
    self._loss = task_loss.TaskLoss(split)

  def __call__(self, model: nnx.Module, ctx) -> dict[str, float]:
    out = self._loss(model, ctx)
    out[f"{self.split}/ppl"] = float(jnp.exp(out[f"{self.split}/ce"]))
    return out


class _PerSplit:
  def __init__(self, splits):
    self._evaluators = [_WithPerplexity(s) for s in splits]

  def __call__(self, model: nnx.Module, ctx) -> dict[str, float]:
    out = {}
    for evaluator in self._evaluators:
      out.update(evaluator(model, ctx))
    return out


class MonetTask(task_lib.Task):
  """Monet causal LM; `config.model` fields are documented in projects/monet/model_config.py."""

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    self.model_config = model_config.from_config(config.model)
    m = config.model
    self.unif_weight = float(m.get("unif_weight", losses.AUX_LOSS_WEIGHT))
    self.amb_weight = float(m.get("amb_weight", losses.AUX_LOSS_WEIGHT))
    self.aux_reduce = m.get("aux_reduce", "mean")
    for name, value in (("unif_weight", self.unif_weight), ("amb_weight", self.amb_weight)):
      if value < 0:
        raise ValueError(f"config.model.{name}={value!r}: must be >= 0 (0 switches it off).")
    if self.aux_reduce not in ("mean", "sum"):
      raise ValueError(f"config.model.aux_reduce={self.aux_reduce!r}: allowed 'mean', 'sum'.")
    self._evaluators = None

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return MonetForCausalLM(self.model_config, rngs=rngs)

  def loss(self, model, batch, *, train, rngs):
    del train, rngs  # Monet has no dropout; train/eval mode is set on the model by the caller
    weights = token_weights(batch)
    out = model(batch["inputs"], output_router_probs=True)
    ce, accuracy = cross_entropy(out.logits, batch["targets"], weights)
    aux = losses.routing_aux_losses(out.router_probs, mask=weights, reduce=self.aux_reduce)
    loss = ce + self.unif_weight * aux["uniformity"] + self.amb_weight * aux["ambiguity"]
    metrics = dict(ce=ce, ppl=jnp.exp(ce), accuracy=accuracy, **aux,
                   **routing_metrics(out.router_probs, weights))
    return loss, metrics

  def evaluators(self) -> dict[str, task_lib.Evaluator]:
    # Built once: the trainer asks at every evaluation and new instances would recompile.
    if self._evaluators is None:
      names = tuple(self.config.eval.get("evaluators", ("loss",)))
      unknown = [n for n in names if n != "loss"]
      if unknown:
        raise ValueError(f"config.eval.evaluators={names!r}: {unknown} unknown; allowed: ('loss',).")
      self._evaluators = {"loss": _PerSplit(self.config.eval.splits)} if names else {}
    return self._evaluators

  def sample(self, model, prompt: str, *, num_tokens: int, temperature: float, seed: int) -> str:
    """`main.py --mode=sample`: greedy decoding with the KV cache (generate.greedy_generate)."""
    del seed
    from common.data import tokenizers  # pylint: disable=g-import-not-at-top
    from projects.monet import generate  # pylint: disable=g-import-not-at-top
    if temperature != 0:
      raise ValueError(f"--temperature={temperature}: Monet decodes greedily only; pass "
                       "--temperature=0.")
    tok = tokenizers.from_config(self.config.data)
    ids = tok.encode(prompt)[None]
    limit = model.config.max_position_embeddings
    if ids.shape[1] + num_tokens > limit:
      raise ValueError(f"--prompt ({ids.shape[1]} tokens) + --num_tokens={num_tokens} exceeds "
                       f"the model's max_position_embeddings={limit}.")
    out = generate.greedy_generate(model, jnp.asarray(ids), num_tokens)
    return tok.decode(jax.device_get(out)[0].tolist())


def get_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  return MonetTask(config)
