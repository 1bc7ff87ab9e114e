"""The MoE-X Task: causal LM cross-entropy plus the MoE layers' auxiliary losses.

  loss = CE + balance_weight * mean_layers(balance_loss) + z_loss_weight * mean_layers(z_loss)

on packed {'inputs', 'targets', 'weights'} batches (the data layer shifts the targets).

Metrics (scalars; MoE statistics averaged over the layers):
  ce, ppl, accuracy      next-token cross-entropy per target token (nats), exp(ce), accuracy
  balance_loss, z_loss   the auxiliary losses (MoE kinds; balance 1.0 = perfectly balanced)
  moe/load_max, moe/load_min   largest / smallest fraction of token->expert assignments that an
                         expert receives (1/M each when balanced)
  moe/dropped            fraction of assignments dropped for capacity ('capacity' dispatch)
  hidden_l0              nonzero FFN hidden units per token (MoE: of the M*D code; dense: of H)
Evaluators (config.eval.evaluators, common/eval/registry.py): 'loss' (CE and perplexity per
split), 'board_state' (registered here: chess coverage / reconstruction of one layer's hidden
code, projects/moex/board_eval.py).

config.data.name 'superposition' selects the other MoE-X task: one FFN reconstructing sparse
synthetic features from their superposition, scored by the 'features' evaluator against the
known truth (common/tasks/superposition.py; the FFN: projects/moex/superposition.py;
configs/superposition.py).
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import ml_collections
from flax import nnx

from common.eval import registry
from common.tasks import lm
from common.tasks import superposition as toy
from common.train import task as task_lib
from projects.moex import config as config_lib
from projects.moex import ffn as ffn_lib
from projects.moex import superposition
from projects.moex.model import GPT


def model_config(config: ml_collections.ConfigDict) -> config_lib.ModelConfig:
  """config.model checked and built (projects/moex/config.py), vocab_size 0 resolved from the
  tokenizer of config.data."""
  cfg = config_lib.from_config(config.model)
  if not cfg.vocab_size:
    from common.data import tokenizers  # pylint: disable=g-import-not-at-top
    cfg = dataclasses.replace(cfg, vocab_size=tokenizers.from_config(config.data).vocab_size)
  return cfg


def _board_state(ctx: registry.BuildContext) -> registry.Evaluator:
  from projects.moex import board_eval  # pylint: disable=g-import-not-at-top
  return board_eval.BoardStateEvaluator(ctx.config)


registry.register("board_state", _board_state)


class MoEXTask(task_lib.Task):

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    self.ffn = config_lib.from_config(config.model)  # unknown fields and bad values fail here

  def validate(self, config):
    m = config.model
    if config.data.get("seq_len", 0) > m.max_len:
      raise ValueError(f"config.data.seq_len={config.data.seq_len} exceeds config.model.max_len="
                       f"{m.max_len}; raise max_len (the learned position table's size).")
    names = tuple(config.eval.get("evaluators", registry.DEFAULT))
    if "board_state" in names and config.data.get("tokenizer") != "chess":
      raise ValueError(f"config.eval.evaluators={names!r}: 'board_state' needs chess transcripts "
                       f"(config.data.tokenizer='chess'; got {config.data.get('tokenizer')!r}); "
                       "drop it for other data.")
    model_config(config)  # field names, shapes and values, before anything compiles

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return GPT(model_config(self.config), rngs=rngs)

  def loss(self, model, batch, *, train, rngs):
    weights = lm.token_weights(batch)
    logits = model(batch["inputs"], token_mask=weights, train=train, rngs=rngs)
    stats = nnx.pop(model, nnx.Intermediate)
    ce, accuracy = lm.cross_entropy(logits, batch["targets"], weights)
    aux, metrics = ffn_lib.stats_metrics(stats, self.ffn)
    metrics.update(ce=ce, ppl=jnp.exp(ce), accuracy=accuracy)
    return ce + aux, metrics


def get_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  if config.data.get("name") == toy.NAME:   # the ground-truth features task
    return superposition.get_task(config)
  return MoEXTask(config)
