"""SEA tasks: `get_task(config)` by `config.model.mode`.

'distill' (the official recipe, gmlwns2000/sea-attention `opt_trainer.py`): a frozen dense OPT
teacher and a SEA student initialised from the teacher's weights. The teacher's weights are
`FrozenWeight`s, nnx Variables that are not nnx.Params: they live in the train state's
`model_state`, so the optimiser neither updates nor stores moments for them, and the loss reads
them under stop_gradient. Loss (spec §2.4):
  0.1 CE_student + 5 mean_l MSE(h_t, h_s) + 0.2 KL(z_t || z_s)
  + mean over SEA layers of [0.1 KL + MSE](estimate, teacher) + [0.1 KL + MSE](student q k^T,
    teacher) + MSE(context)
'lm': plain next-token cross-entropy on one OPT (the dense teacher of the byte-level demo).

Batches: the packed-LM format of common.data ({'inputs', 'targets' [B, T], 'weights'}).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from common.layers import variables
from common.tasks import lm
from common.train import task as task_lib
from projects.sea import losses, masks, opt, perplexity, weights  # perplexity: 'strided'
from projects.sea.config import OPTConfig, from_config

LN2 = math.log(2.0)


class FrozenWeight(nnx.Variable):
  """A teacher weight: model state, never a gradient target or an optimiser leaf."""


class DistillModel(nnx.Module):
  """student: OPT with SEA layers (trained); teacher: dense OPT of FrozenWeights.

  At construction the teacher holds the student's dense weights (the official recipe copies
  the teacher into the student; the SEA estimator starts fresh). Real runs overwrite both with a
  pretrained OPT through export_opt.py and `train.init_from`.
  """

  def __init__(self, cfg: OPTConfig, *, rngs: nnx.Rngs):
    self.student = opt.OPT(cfg, rngs=rngs)
    teacher = opt.OPT(cfg.dense(), rngs=nnx.Rngs(0))
    weights.load_dense(teacher, weights.dense_tree(self.student))
    self.teacher = variables.params_as(teacher, FrozenWeight)


def kept_key_fraction(sea_out, seq_len: int, num_heads: int, k: int) -> jax.Array:
  """Fraction of the causal (query, key) pairs the SEA mask keeps, over batch and heads."""
  tm = sea_out.mask_compressed_keep.shape[-1]
  tables = masks.selection_tables(seq_len, tm, num_heads, k)
  kept = jnp.sum(jnp.where(sea_out.mask_compressed_keep, jnp.asarray(tables.bin_count), 0))
  pairs = sea_out.mask_compressed_keep.shape[0] * num_heads * seq_len * (seq_len + 1) / 2
  return kept / pairs


class SEATask(task_lib.Task):
  """Both modes: the OPT config is read once from `config.model`."""

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    self.opt_config = from_config(config.model)  # checks every config.model field
    self.mode = config.model.get("mode", "distill")

  def validate(self, config: ml_collections.ConfigDict) -> None:
    cfg = from_config(config.model)
    seq_len = config.data.get("seq_len", 0)
    if seq_len > cfg.max_position_embeddings:
      raise ValueError(f"config.data.seq_len={seq_len} > model max_position_embeddings="
                       f"{cfg.max_position_embeddings}; shorten the windows.")
    if config.model.get("mode", "distill") == "distill" and not cfg.sea_layers:
      raise ValueError("config.model.mode='distill' with sea_layers='none' has nothing to "
                       "distil; set model.sea_layers='all' (official) or a tuple of layers.")
    if config.data.get("name") and config.data.get("tokenizer"):
      from common.data import pipeline  # pylint: disable=g-import-not-at-top
      vocab = pipeline.vocab_size(config.data)
      if vocab > cfg.vocab_size:  # out-of-range ids would be clamped silently by the gather
        raise ValueError(f"config.data's tokenizer has {vocab} ids > model.vocab_size="
                         f"{cfg.vocab_size}; raise model.vocab_size.")

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    if self.mode == "distill":
      return DistillModel(self.opt_config, rngs=rngs)
    return opt.OPT(self.opt_config, rngs=rngs)

  def train_data(self, *, seed, process_index, process_count, batch_size):
    if self.config.data.get("source") == "wikitext2":  # OPT BPE: not a common.data tokenizer
      from projects.sea import wikitext  # pylint: disable=g-import-not-at-top
      return wikitext.train_iterator(self.config.data, seed=seed, process_index=process_index,
                                     process_count=process_count, batch_size=batch_size)
    return super().train_data(seed=seed, process_index=process_index,
                              process_count=process_count, batch_size=batch_size)

  def student(self, model: nnx.Module) -> opt.OPT:
    """The model whose perplexity is evaluated (the student when distilling)."""
    return model.student if self.mode == "distill" else model

  def loss(self, model, batch, *, train, rngs):
    del train, rngs  # OPT as fine-tuned by SEA has no dropout in our port (see README)
    w = lm.token_weights(batch)
    if self.mode == "lm":
      out = model(batch["inputs"])
      ce, _ = lm.cross_entropy(out.logits, batch["targets"], w)
      return ce, {"ce": ce, "bits_per_token": ce / LN2, "ppl": jnp.exp(ce)}
    return distillation_loss(model, batch["inputs"], batch["targets"], w, self.opt_config)


def distillation_loss(model: DistillModel, tokens, targets, w, cfg: OPTConfig):
  """The official KD objective and its terms as metrics."""
  teacher = jax.tree.map(jax.lax.stop_gradient, model.teacher(tokens, return_scores=True))
  student = model.student(tokens)
  ce, _ = lm.cross_entropy(student.logits, targets, w)
  est_kl, est_mse, dense_terms, ctx_terms, kept = [], [], [], [], []
  for ts, tt in zip(student.layers, teacher.layers):
    if ts.sea is None:
      continue  # calc_loss_special averages over the SEA (perlin) layers only
    kl, mse = losses.causal_attention_kd_terms(
        losses.upsample_estimated_scores(ts.sea.estimated_attention_score), tt.scores)
    est_kl.append(kl)
    est_mse.append(mse)
    dense_terms.append(losses.dense_score_loss(ts.q, ts.k, tt.scores))
    ctx_terms.append(losses.context_loss(ts.context, tt.context))
    kept.append(kept_key_fraction(ts.sea, tokens.shape[1], cfg.num_heads, cfg.sea_k))
  layer_losses = [losses.ATTENTION_KL_WEIGHT * a + b + c + d
                  for a, b, c, d in zip(est_kl, est_mse, dense_terms, ctx_terms)]
  total = losses.model_distillation_loss(
      student_ce=ce, teacher_hidden=teacher.hidden_states, student_hidden=student.hidden_states,
      teacher_logits=teacher.logits, student_logits=student.logits, layer_losses=layer_losses)
  mean = lambda xs: sum(xs) / len(xs)
  v = student.logits.shape[-1]
  logit_kl = losses.kl_batchmean(
      jax.nn.log_softmax(student.logits.reshape(-1, v).astype(jnp.float32)),
      jax.nn.softmax(teacher.logits.reshape(-1, v).astype(jnp.float32)))
  hidden = mean([jnp.mean((a.astype(jnp.float32) - b.astype(jnp.float32)) ** 2)
                 for a, b in zip(teacher.hidden_states, student.hidden_states)])
  teacher_ce, _ = lm.cross_entropy(teacher.logits, targets, w)
  metrics = {
      "ce": ce, "bits_per_token": ce / LN2, "ppl": jnp.exp(ce),
      "teacher_ce": teacher_ce, "teacher_bits_per_token": teacher_ce / LN2,
      "kd/hidden_mse": hidden, "kd/logit_kl": logit_kl,
      "sea/estimate_kl": mean(est_kl), "sea/estimate_mse": mean(est_mse),
      "sea/dense_score_loss": mean(dense_terms), "sea/context_mse": mean(ctx_terms),
      "sea/layer_loss": mean(layer_losses), "sea/kept_key_fraction": mean(kept),
  }
  return total, metrics


def get_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  return SEATask(config)
