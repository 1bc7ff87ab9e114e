"""A causal LM whose attention is any registered mixer: one harness to compare sparse attentions.

`config.project = 'mixer_lm'` (a built-in task, like 'toy'). The model is a pre-LN decoder
(token embedding, optional learned positions, `num_layers` x [LN -> mixer -> +, LN -> GELU MLP
-> +], LN, vocabulary head); only `config.model.mixer` (a name from common.layers.mixers) and
its `mixer_options` change between the rows of a comparison, so width, depth, data, optimiser
and steps are equal by construction. Parameters differ only by what a mixer itself adds
(routing's none, SEA's estimator, ...); the demos report the count.

config.model fields: mixer ('dense'), mixer_options ({}), hidden (64), num_layers (2),
num_heads (2), mlp_ratio (4), vocab_size (0: from the data), positions ('none' | 'learned';
the recall task is matched by content, so 'none' by default), attention_impl ('auto'), and
the base fields dtype, param_dtype, remat_policy ('none' only).

Loss: weighted next-token cross-entropy (the data layer's weights; on the recall stream, the
answers only) plus the mixers' aux losses. Metrics: 'ce', 'ppl', 'accuracy', 'aux_loss'.
`eval_forward(model, batch)` returns the logits, which the 'recall' evaluator
(common/eval/recall.py) scores by distance bucket.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from common import config_contract
from common.data import pipeline
from common.layers import mixers
from common.layers.linear import Linear
from common.layers.mlp import Mlp
from common.layers.norms import LayerNorm
from common.layers.position import LearnedPositionEmbedding
from common.tasks import lm
from common.train import task as task_lib

POSITIONS = ("none", "learned")


@dataclasses.dataclass(frozen=True)
class MixerLMConfig(config_contract.ModelFields):
  mixer: str = "dense"
  mixer_options: Any = dataclasses.field(default_factory=dict)
  hidden: int = 64
  num_layers: int = 2
  num_heads: int = 2
  mlp_ratio: int = 4
  vocab_size: int = 0
  positions: str = "none"
  attention_impl: str = "auto"

  def __post_init__(self):
    super().__post_init__()
    config_contract.check_positive(self, ("hidden", "num_layers", "num_heads", "mlp_ratio"))
    if self.positions not in POSITIONS:
      raise ValueError(f"config.model.positions={self.positions!r} is not allowed: one of "
                       f"{POSITIONS}.")
    if self.remat_policy != "none":
      raise ValueError(f"config.model.remat_policy={self.remat_policy!r} is not supported by "
                       "mixer_lm (a demo-sized model); use 'none'.")


def from_config(m: ml_collections.ConfigDict) -> MixerLMConfig:
  config_contract.check_fields(m, config_contract.dataclass_fields(MixerLMConfig))
  return config_contract.dataclass_from(MixerLMConfig, m)


class Block(nnx.Module):

  def __init__(self, cfg: MixerLMConfig, spec: mixers.MixerSpec, rngs: nnx.Rngs):
    kw = dict(dtype=cfg.dtype, param_dtype=cfg.param_dtype)
    self.norm1 = LayerNorm(cfg.hidden, **kw)
    self.mixer = mixers.build(cfg.mixer, spec, cfg.mixer_options, rngs)
    self.norm2 = LayerNorm(cfg.hidden, **kw)
    self.mlp = Mlp(cfg.hidden, cfg.mlp_ratio * cfg.hidden, activation="gelu", sow_stats=False,
                   kernel_init=nnx.initializers.lecun_normal(), rngs=rngs, **kw)

  def __call__(self, x, *, train: bool, rngs):
    y, aux = self.mixer(self.norm1(x), train=train, rngs=rngs)
    x = x + y
    return x + self.mlp(self.norm2(x), train=train, rngs=rngs), aux


class MixerLM(nnx.Module):

  def __init__(self, cfg: MixerLMConfig, seq_len: int, rngs: nnx.Rngs):
    spec = mixers.MixerSpec(hidden=cfg.hidden, num_heads=cfg.num_heads, seq_len=seq_len,
                            attention_impl=cfg.attention_impl, dtype=cfg.dtype,
                            param_dtype=cfg.param_dtype)
    self.embed = nnx.Embed(cfg.vocab_size, cfg.hidden, dtype=cfg.dtype,
                           param_dtype=cfg.param_dtype,
                           embedding_init=nnx.with_partitioning(
                               nnx.initializers.normal(0.02), ("vocab", "embed")), rngs=rngs)
    self.positions = (LearnedPositionEmbedding(seq_len, cfg.hidden, rngs=rngs)
                      if cfg.positions == "learned" else None)
    self.blocks = nnx.List([Block(cfg, spec, rngs) for _ in range(cfg.num_layers)])
    self.norm = LayerNorm(cfg.hidden, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
    self.head = Linear(cfg.hidden, cfg.vocab_size, kernel_axes=("embed", "vocab"),
                       kernel_init=nnx.initializers.lecun_normal(), dtype=cfg.dtype,
                       param_dtype=cfg.param_dtype, rngs=rngs)

  def __call__(self, tokens, *, train: bool = False, rngs=None):
    """tokens int32 [B, T] -> (logits [B, T, V], summed aux loss)."""
    x = self.embed(tokens)
    if self.positions is not None:
      x = self.positions(x)
    aux = jnp.zeros((), jnp.float32)
    for block in self.blocks:
      x, a = block(x, train=train, rngs=rngs)
      aux = aux + a
    return self.head(self.norm(x)), aux


class MixerLMTask(task_lib.Task):
  """Next-token prediction on any 'lm'-format data (the recall stream, packed text)."""

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    self.model_config = from_config(config.model)

  def _resolved(self) -> MixerLMConfig:
    cfg = self.model_config
    if not cfg.vocab_size:
      cfg = dataclasses.replace(cfg, vocab_size=pipeline.vocab_size(self.config.data))
    return cfg

  def validate(self, config: ml_collections.ConfigDict) -> None:
    from_config(config.model)
    if config.data.get("task_format", "lm") != "lm":
      raise ValueError(f"config.data.task_format={config.data.task_format!r}: mixer_lm is a "
                       "causal LM and needs 'lm' batches.")

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return MixerLM(self._resolved(), self.config.data.seq_len, rngs)

  def loss(self, model, batch, *, train, rngs):
    logits, aux = model(batch["inputs"], train=train, rngs=rngs if train else None)
    ce, accuracy = lm.cross_entropy(logits, batch["targets"], lm.token_weights(batch))
    return ce + aux, {"ce": ce, "ppl": jnp.exp(ce), "accuracy": accuracy, "aux_loss": aux}

  def eval_forward(self, model, batch) -> jax.Array:
    return model(batch["inputs"])[0]


def get_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  return MixerLMTask(config)


if __name__ == "__main__":  # python -m common.tasks.mixer_lm --config FILE.py:ARGS --workdir DIR
  from common.train import main  # pylint: disable=g-import-not-at-top
  main.run("mixer_lm")
