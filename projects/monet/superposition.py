"""Monet's experts in the superposition task (common/tasks/superposition.py: data, model, loss
and the 'features' evaluator), beside MoE-X's FFNs at equal active parameters.

`ToyFFN` is one Monet layer's routed experts without attention: a router (two sub-routers per
routing head, BatchNorm threshold) and the HD or VD experts on h [N, F] as N one-token
sequences. Its auxiliary loss is the paper's uniformity + ambiguity (losses.RoutingLoss, weights
from config.model). Its hidden code is the one the chess board-state rows score
(`experts.hidden_code`: what the down projections read, zero where the router sends no mass):
E * m units for HD, 2 * E * m for VD.
"""
from __future__ import annotations

import jax.numpy as jnp
import ml_collections
from flax import nnx

from common.tasks import superposition as toy
from projects.monet import config as config_lib
from projects.monet import experts as experts_lib
from projects.monet import losses
from projects.monet.router import MonetRouter


class ToyFFN(nnx.Module):
  """Monet's router and HD / VD experts with the toy task's interface."""

  def __init__(self, cfg: config_lib.MonetConfig, routing_loss: losses.RoutingLoss, *,
               rngs: nnx.Rngs):
    self.routing_loss = routing_loss
    self.router = MonetRouter(cfg, rngs=rngs)
    self.experts = experts_lib.make_experts(cfg, rngs=rngs)

  def __call__(self, h, *, train: bool):
    u = h[:, None, :]                           # N one-token sequences
    probs = self.router(u, train=train)
    y = self.experts(u, *probs)[:, 0]
    aux, metrics = self.routing_loss([probs], jnp.ones(u.shape[:2], jnp.float32))
    return y, aux, metrics

  def hidden_code(self, h):
    u = h[:, None, :]
    return experts_lib.hidden_code(self.experts, u, *self.router(u))[:, 0]


def get_task(config: ml_collections.ConfigDict) -> toy.SuperpositionTask:
  cfg = config_lib.from_config(config.model)
  if cfg.moe_decompose == "dense":
    raise ValueError("config.model.moe_decompose='dense' has no routed units to score; the "
                     "superposition task takes 'horizontal' or 'vertical' (its dense baselines "
                     "are projects/moex/configs/superposition.py's).")
  routing_loss = losses.RoutingLoss.from_config(config.model)
  return toy.SuperpositionTask(config, width=cfg.hidden_size, width_field="hidden_size",
                               make_ffn=lambda rngs: ToyFFN(cfg, routing_loss, rngs=rngs))
