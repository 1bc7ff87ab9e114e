"""SEA tasks: `get_task(config)` by `config.model.mode`.

'distill' (the official recipe, gmlwns2000/sea-attention `opt_trainer.py`): a frozen dense OPT
teacher and a SEA student initialised from the teacher's weights. The teacher's weights are
`FrozenWeight`s, nnx Variables that are not nnx.Params: they live in the train state's
`model_state`, so the optimiser neither updates nor stores moments for them, and the loss reads
them under stop_gradient. Loss (spec §2.4):
  0.1 CE_student + 5 mean_l MSE(h_t, h_s) + 0.2 KL(z_t || z_s)
  + mean over SEA layers of [0.1 KL + MSE](estimate, teacher) + [0.1 KL + MSE](student q k^T,
    teacher) + MSE(context)
'lm': plain next-token cross-entropy on one OPT (the dense teacher of the CPU demos).

Student kinds (config.model.student_attention, config.py): 'sea' (the official layer, the loss
above), or the demo's baselines 'performer' and 'local', whose layers have no estimator and no
dense scores of their own to distil, so their loss keeps the terms that exist:
  0.1 CE_student + 5 mean_l MSE(h_t, h_s) + 0.2 KL(z_t || z_s) + mean over student layers of
  MSE(context)
(same weights as the official objective; 'sea/layer_loss' is then the context term alone).

Metrics of every distillation step and evaluation (besides each loss term, 'teacher_ce', and
for 'sea' 'sea/estimate_kl', 'sea/kept_key_fraction', ...), averaged over rows (batch, heads,
queries) and over the student layers:
  teacher_attention_covered  the teacher's attention mass on the keys the student reads (SEA:
                             its kept keys; local: its window; performer: every causal key, so
                             1.0 by construction).
  attention_kl               KL(teacher row || student row) in nats, the student's row being the
                             distribution it applies (opt.student_attention_rows), with student
                             probabilities floored at ATTENTION_KL_FLOOR = 1e-6 before the log:
                             a key the student never reads costs at most -ln 1e-6 = 13.8 nats
                             per unit of teacher mass on it, instead of infinity.
Both are diagnostics (no gradient).

Batches: the packed-LM format of common.data ({'inputs', 'targets' [B, T], 'weights'}), e.g.
the recall stream of common.data.recall (configs/recall.py). `eval_forward` returns the
student's logits [B, T, V] on batch['inputs'] (the model's in 'lm'), for the 'recall'
evaluator.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from jax.scipy.special import xlogy

from common.layers import variables
from common.tasks import lm
from common.train import task as task_lib
from projects.sea import losses, masks, opt, perplexity, weights  # perplexity: 'strided'
from projects.sea.config import OPTConfig, from_config, local_block

LN2 = math.log(2.0)
ATTENTION_KL_FLOOR = 1e-6  # student probabilities are floored here before the log (see above)


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
    block = local_block(cfg.sea_k)
    if cfg.student_attention == "local" and cfg.sea_layers and seq_len % block:
      raise ValueError(f"config.data.seq_len={seq_len} is not a multiple of the 'local' student's "
                       f"block {block} (= model.sea_k / 8); change one of them.")
    if config.data.get("name") and (config.data.get("tokenizer")
                                    or config.data.get("kind") == "recall"):
      from common.data import pipeline  # pylint: disable=g-import-not-at-top
      vocab = pipeline.vocab_size(config.data)
      if vocab > cfg.vocab_size:  # out-of-range ids would be clamped silently by the gather
        source = "recall stream" if config.data.get("kind") == "recall" else "tokenizer"
        raise ValueError(f"config.data's {source} has {vocab} ids > model.vocab_size="
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

  def eval_forward(self, model: nnx.Module, batch) -> jax.Array:
    """The student's logits [B, T, V] on batch['inputs'] (the model's in 'lm')."""
    return self.student(model)(batch["inputs"]).logits

  def loss(self, model, batch, *, train, rngs):
    del rngs  # OPT as fine-tuned by SEA has no dropout in our port (see README)
    w = lm.token_weights(batch)
    if self.mode == "lm":
      out = model(batch["inputs"])
      ce, _ = lm.cross_entropy(out.logits, batch["targets"], w)
      return ce, {"ce": ce, "bits_per_token": ce / LN2, "ppl": jnp.exp(ce)}
    # The attention match (full [T, T] teacher softmax and KL) only feeds metrics; it cost a
    # third of the 'local' student's train step, so it is measured in evaluation only.
    return distillation_loss(model, batch["inputs"], batch["targets"], w, self.opt_config,
                             attention_metrics=not train)


def attention_match(probs: jax.Array, attended: jax.Array | None,
                    teacher_scores: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(teacher_attention_covered, attention_kl) of one layer, means over rows [N, H, T].

  probs: the student's rows, fp32 [N, H, T, T]; attended: bool [N, H, T, T] or None (every
  causal key); teacher_scores: the teacher's raw q k^T [N, H, T, T].
  """
  t = teacher_scores.shape[-1]
  causal = jnp.tril(jnp.ones((t, t), bool))
  target = jax.nn.softmax(
      jnp.where(causal, teacher_scores.astype(jnp.float32), losses.FP_MIN), axis=-1)
  target = jnp.where(causal, target, 0.0)
  covered = (jnp.ones(target.shape[:-1], jnp.float32) if attended is None
             else jnp.sum(jnp.where(attended, target, 0.0), axis=-1))
  log_student = jnp.log(jnp.maximum(probs, ATTENTION_KL_FLOOR))
  kl = jnp.sum(xlogy(target, target) - target * log_student, axis=-1)
  return jnp.mean(covered), jnp.mean(kl)


def distillation_loss(model: DistillModel, tokens, targets, w, cfg: OPTConfig, *,
                      attention_metrics: bool = True):
  """The official KD objective (its existing terms for 'performer' / 'local') and metrics;
  `attention_metrics`: also teacher_attention_covered and attention_kl (attention_match)."""
  teacher = jax.tree.map(jax.lax.stop_gradient, model.teacher(tokens, return_scores=True))
  student = model.student(tokens)
  ce, _ = lm.cross_entropy(student.logits, targets, w)
  is_sea = cfg.student_attention == "sea"
  est_kl, est_mse, dense_terms, ctx_terms, kept, covered, att_kl = ([] for _ in range(7))
  for layer, ts, tt in zip(model.student.layers, student.layers, teacher.layers):
    attn = layer.self_attn
    if attn.kind == "dense":
      continue  # calc_loss_special averages over the SEA (perlin) layers only
    ctx_terms.append(losses.context_loss(ts.context, tt.context))
    if attention_metrics:
      probs, attended = opt.student_attention_rows(attn, jax.lax.stop_gradient(ts))
      c, a = attention_match(probs, attended, tt.scores)
      covered.append(jax.lax.stop_gradient(c))
      att_kl.append(jax.lax.stop_gradient(a))
    if not is_sea:
      continue
    kl, mse = losses.causal_attention_kd_terms(
        losses.upsample_estimated_scores(ts.sea.estimated_attention_score), tt.scores)
    est_kl.append(kl)
    est_mse.append(mse)
    dense_terms.append(losses.dense_score_loss(ts.q, ts.k, tt.scores))
    kept.append(kept_key_fraction(ts.sea, tokens.shape[1], cfg.num_heads, cfg.sea_k))
  if is_sea:
    layer_losses = [losses.ATTENTION_KL_WEIGHT * a + b + c + d
                    for a, b, c, d in zip(est_kl, est_mse, dense_terms, ctx_terms)]
  else:
    layer_losses = list(ctx_terms)
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
      "sea/context_mse": mean(ctx_terms), "sea/layer_loss": mean(layer_losses),
  }
  if attention_metrics:
    metrics.update({"teacher_attention_covered": mean(covered), "attention_kl": mean(att_kl)})
  if is_sea:
    metrics.update({
        "sea/estimate_kl": mean(est_kl), "sea/estimate_mse": mean(est_mse),
        "sea/dense_score_loss": mean(dense_terms), "sea/kept_key_fraction": mean(kept)})
  return total, metrics


def get_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  return SEATask(config)
