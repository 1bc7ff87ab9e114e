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
Evaluators (config.eval.evaluators): 'loss' (CE and perplexity per split), 'board_state'
(chess coverage / reconstruction of one layer's hidden code: projects/moex/board_eval.py).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from common.eval import task_loss
from common.layers import intermediates
from common.train import task as task_lib
from projects.moex import ffn as ffn_lib
from projects.moex.model import GPT, LMConfig

EVALUATORS = ("loss", "board_state")
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def add_model_fields(m: ml_collections.ConfigDict) -> None:
  """config.model's fields with the paper's chess defaults (8 layers, 8 heads, d 512)."""
  m.vocab_size = 0               # 0: the tokenizer's vocabulary size
  m.num_layers = 8
  m.num_heads = 8
  m.d_model = 512
  m.max_len = 1024
  ffn_lib.add_fields(m)
  m.upcycle_mode = "auto"        # projects/moex/upcycle.py: auto | copy | split
  m.upcycle_noise = 0.0          # relative std of the noise added to up-cycled expert kernels


def model_config(config: ml_collections.ConfigDict) -> LMConfig:
  m = config.model
  vocab = m.vocab_size
  if not vocab:
    from common.data import tokenizers  # pylint: disable=g-import-not-at-top
    vocab = tokenizers.from_config(config.data).vocab_size
  return LMConfig(vocab_size=vocab, num_layers=m.num_layers, num_heads=m.num_heads,
                  d_model=m.d_model, max_len=m.max_len, ffn=ffn_lib.from_config(m),
                  dtype=_DTYPES[m.dtype], param_dtype=_DTYPES[m.param_dtype])


def token_weights(batch: task_lib.Batch) -> jax.Array:
  w = batch["weights"].astype(jnp.float32)
  if "mask" in batch:  # padded evaluation batches: whole examples of weight 0
    w = w * batch["mask"].astype(jnp.float32)[:, None]
  return w


def cross_entropy(logits, targets, weights):
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
  total = jnp.maximum(jnp.sum(weights), 1.0)
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  return jnp.sum(nll * weights) / total, jnp.sum(correct * weights) / total


def _layer_mean(stats: nnx.State, name: str) -> jax.Array | None:
  values = list(intermediates.layer_stats(stats, name).values())
  return jnp.mean(jnp.stack(values), axis=0) if values else None


class _LossAndPerplexity:
  """TaskLoss per split plus ppl = exp(mean CE) (a mean of per-batch ppl would be biased)."""

  def __init__(self, splits):
    self._losses = [task_loss.TaskLoss(s) for s in splits]

  def __call__(self, model, ctx) -> dict[str, float]:
    out = {}
    for loss in self._losses:
      res = loss(model, ctx)
      res[f"{loss.split}/ppl"] = float(jnp.exp(res[f"{loss.split}/ce"]))
      out.update(res)
    return out


class MoEXTask(task_lib.Task):

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    m = config.model
    self.ffn = ffn_lib.from_config(m)
    self.balance_weight = float(m.balance_weight)
    self.z_loss_weight = float(m.z_loss_weight)
    self._evaluators = None

  def validate(self, config):
    m = config.model
    if config.data.get("seq_len", 0) > m.max_len:
      raise ValueError(f"config.data.seq_len={config.data.seq_len} exceeds config.model.max_len="
                       f"{m.max_len}; raise max_len (the learned position table's size).")
    if m.upcycle_mode not in ("auto", "copy", "split"):
      raise ValueError(f"config.model.upcycle_mode={m.upcycle_mode!r}; allowed: auto, copy, split.")
    names = tuple(config.eval.get("evaluators", ("loss",)))
    unknown = [n for n in names if n not in EVALUATORS]
    if unknown:
      raise ValueError(f"config.eval.evaluators={names!r}: {unknown} unknown; allowed: "
                       f"{EVALUATORS}.")
    if "board_state" in names and config.data.get("tokenizer") != "chess":
      raise ValueError(f"config.eval.evaluators={names!r}: 'board_state' needs chess transcripts "
                       f"(config.data.tokenizer='chess'; got {config.data.get('tokenizer')!r}); "
                       "drop it for other data.")
    model_config(config)  # shape checks (heads divide d_model, ...) before anything compiles

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return GPT(model_config(self.config), rngs=rngs)

  def loss(self, model, batch, *, train, rngs):
    del train, rngs  # no dropout (the paper's setting)
    weights = token_weights(batch)
    logits = model(batch["inputs"], token_mask=weights)
    stats = nnx.pop(model, nnx.Intermediate)
    ce, accuracy = cross_entropy(logits, batch["targets"], weights)
    metrics = dict(ce=ce, ppl=jnp.exp(ce), accuracy=accuracy)
    loss = ce
    if self.ffn.is_moe:
      balance = _layer_mean(stats, "balance_loss")
      load = _layer_mean(stats, "expert_load")
      metrics.update({"balance_loss": balance, "moe/load_max": jnp.max(load),
                      "moe/load_min": jnp.min(load),
                      "hidden_l0": _layer_mean(stats, "hidden_l0")})
      loss = loss + self.balance_weight * balance
      if self.ffn.z_loss:
        metrics["z_loss"] = _layer_mean(stats, "z_loss")
        loss = loss + self.z_loss_weight * metrics["z_loss"]
      dropped = _layer_mean(stats, "dropped")
      if dropped is not None:
        metrics["moe/dropped"] = dropped
    else:  # 'act_nonzero' is a per-example fraction of the H hidden units over valid tokens
      metrics["hidden_l0"] = jnp.mean(_layer_mean(stats, "act_nonzero")) * self.ffn.dense_hidden
    return loss, metrics

  def evaluators(self) -> dict[str, task_lib.Evaluator]:
    # Built once: the trainer asks at every evaluation and new instances would recompile.
    if self._evaluators is None:
      names = tuple(self.config.eval.get("evaluators", ("loss",)))
      self._evaluators = {}
      if "loss" in names:
        self._evaluators["loss"] = _LossAndPerplexity(self.config.eval.splits)
      if "board_state" in names:
        from projects.moex import board_eval  # pylint: disable=g-import-not-at-top
        self._evaluators["board_state"] = board_eval.BoardStateEvaluator(self.config)
    return self._evaluators


def get_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  return MoEXTask(config)
