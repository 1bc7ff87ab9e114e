"""The Monet Task: causal LM on packed {'inputs','targets','weights'} batches plus routing losses.

  loss = CE(logits, targets; weights) + unif_weight * L_unif + amb_weight * L_amb

with the paper's eq. 16-18 auxiliary losses (projects/monet/losses.py; lambda = 1e-3 for both,
paper App. B.1). The data layer already shifts the targets, so the CE here is unshifted (the
model's own `labels=` path is HF's shifted loss, kept for the golden tests).

The router BatchNorm running statistics are `nnx.BatchStat`: the trainer carries them in
state['model_state']; `loss(..., train=True)` runs the routers on batch statistics and updates the
running ones inside the forward, `train=False` (evaluation) uses the running statistics.

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

import jax.numpy as jnp
import ml_collections
from flax import nnx

from common.tasks import lm
from common.tasks import superposition as toy
from common.train import task as task_lib
from projects.monet import config as config_lib
from projects.monet import losses, superposition
from projects.monet.model import MonetForCausalLM


class MonetTask(task_lib.Task):
  """Monet causal LM; `config.model` fields are documented in projects/monet/config.py."""

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    self.model_config = config_lib.from_config(config.model)
    self.routing_loss = losses.RoutingLoss.from_config(config.model)

  def validate(self, config: ml_collections.ConfigDict) -> None:
    config_lib.from_config(config.model)  # unknown fields and bad values, before any compile

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return MonetForCausalLM(self.model_config, rngs=rngs)

  def loss(self, model, batch, *, train, rngs):
    weights = lm.token_weights(batch)
    out = model(batch["inputs"], output_router_probs=True, train=train, rngs=rngs)
    ce, accuracy = lm.cross_entropy(out.logits, batch["targets"], weights)
    metrics = dict(ce=ce, ppl=jnp.exp(ce), accuracy=accuracy)
    aux, aux_metrics = self.routing_loss(out.router_probs, weights)
    return ce + aux, dict(metrics, **aux_metrics)

  def sample(self, model, prompt: str, *, num_tokens: int, temperature: float, seed: int) -> str:
    """`main.py --mode=sample`: greedy decoding with the KV cache (generate.greedy_generate)."""
    del seed
    from projects.monet import generate  # pylint: disable=g-import-not-at-top
    if temperature != 0:
      raise ValueError(f"--temperature={temperature}: Monet decodes greedily only; pass "
                       "--temperature=0.")
    return lm.continue_prompt(
        self.config.data, prompt, num_tokens=num_tokens,
        max_len=model.config.max_position_embeddings,
        generate=lambda ids: generate.greedy_generate(model, ids, num_tokens))


def get_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  if config.data.get("name") == toy.NAME:   # the ground-truth features task
    return superposition.get_task(config)
  return MonetTask(config)
