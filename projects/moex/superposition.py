"""MoE-X's FFNs in the superposition task (common/tasks/superposition.py: data, model, loss and
the 'features' evaluator).

`ToyFFN` wraps any FFN kind of projects/moex/ffn.py (d_model = F) in the task's `ToyFFN`
interface: its output, its auxiliary loss (the balance loss for MoE kinds) with the FFN's
metrics, and its hidden code as board_eval reads it: the M*D routing-weighted expert code for
MoE kinds, the H units for dense ones.
"""
from __future__ import annotations

import ml_collections
from flax import nnx

from common.layers import intermediates
from common.tasks import superposition as toy
from projects.moex import config as config_lib
from projects.moex import ffn as ffn_lib


class ToyFFN(nnx.Module):
  """One FFN of projects/moex/ffn.py with the toy task's interface."""

  def __init__(self, cfg: config_lib.ModelConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.ffn = ffn_lib.build(cfg, out_init=nnx.initializers.normal(0.02), rngs=rngs)

  def __call__(self, h, *, train: bool):
    del train   # the FFNs have no train-mode behaviour
    y = self.ffn(h)
    aux, metrics = ffn_lib.stats_metrics(nnx.pop(self.ffn, nnx.Intermediate), self.cfg)
    return y, aux, metrics

  def hidden_code(self, h):
    name = ffn_lib.set_capture(self.ffn, True)   # toy.hidden_code runs this on a copy
    self.ffn(h)
    ffn_lib.set_capture(self.ffn, False)          # so a direct call leaves the model as it was
    stats = nnx.pop(self.ffn, nnx.Intermediate)
    return next(iter(intermediates.layer_stats(stats, name).values())).reshape(len(h), -1)


def get_task(config: ml_collections.ConfigDict) -> toy.SuperpositionTask:
  cfg = config_lib.from_config(config.model)
  return toy.SuperpositionTask(config, width=cfg.d_model, width_field="d_model",
                               make_ffn=lambda rngs: ToyFFN(cfg, rngs=rngs))
