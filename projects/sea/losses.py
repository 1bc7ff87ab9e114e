"""SEA's distillation losses (causal OPT recipe), as pure functions.

Per layer (attention.py, when the teacher's scores and context are given; spec §2.4):
  L_est   = 0.1 KL(softmax(S_teacher) || softmax(S_up)) + MSE(softmax(S_up), softmax(S_teacher))
            with S_up the estimator logits mapped to [T, T] by the nearest bin map;
  L_dense = the same form on the student's own q k^T (q pre-scaled, no further 1/sqrt(D));
  L_ctx   = MSE(teacher context, SEA context), both [N, T, H*D] before out_proj.
  perlin_opt.py `calc_loss_special` averages (L_est + L_dense + L_ctx) over the layers.
Whole model (opt_trainer.py `KDWrapperModel.forward`):
  loss = 0.1 CE_student + 5 mean_l MSE(h_teacher_l, h_student_l)
         + 0.2 KL(softmax(z_teacher) || softmax(z_student)) + loss_special.

Causal entries above the diagonal are filled with FP_MIN = finfo(float32).min / 2 (finite, as
attention.py does) so that log-softmax stays finite and the KL's 0 * log 0 terms vanish.
KL uses torch's `kl_div(..., 'batchmean')`: the sum over all entries divided by the number of rows
(N*H*T for attention, N*T for logits). MSE is the mean over all entries, masked ones included.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

from projects.sea import masks

FP_MIN = float(np.finfo(np.float32).min) / 2
ATTENTION_KL_WEIGHT = 0.1  # attention.py: `loss_kl_t = F.kl_div(...) * 0.1`


def kl_batchmean(log_input: jax.Array, target: jax.Array) -> jax.Array:
  """torch F.kl_div(log_input, target, reduction='batchmean') over rows of the last axis."""
  rows = int(np.prod(log_input.shape[:-1]))
  return jnp.sum(xlogy(target, target) - target * log_input) / rows


def upsample_estimated_scores(score: jax.Array) -> jax.Array:
  """S [N, H, T, T_M] -> [N, H, T, T] by the nearest bin map; keys j > i get FP_MIN."""
  return masks.nearest_to_keys(score.astype(jnp.float32), FP_MIN)


def causal_attention_kd_terms(student_scores: jax.Array,
                              teacher_scores: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(KL(teacher || student) batchmean, MSE) of the causal softmaxes of [N, H, T, T] logits."""
  t = student_scores.shape[-1]
  causal = jnp.tril(jnp.ones((student_scores.shape[-2], t), bool))
  student = jnp.where(causal, student_scores.astype(jnp.float32), FP_MIN)
  target = jax.nn.softmax(jnp.where(causal, teacher_scores.astype(jnp.float32), FP_MIN), axis=-1)
  kl = kl_batchmean(jax.nn.log_softmax(student, axis=-1), target)
  mse = jnp.mean((jax.nn.softmax(student, axis=-1) - target) ** 2)
  return kl, mse


def causal_attention_kd(student_scores: jax.Array, teacher_scores: jax.Array) -> jax.Array:
  """0.1 KL(teacher || student) + MSE of the causal softmaxes; scores [N, H, T, T] logits."""
  kl, mse = causal_attention_kd_terms(student_scores, teacher_scores)
  return ATTENTION_KL_WEIGHT * kl + mse


def estimator_loss(estimated_score: jax.Array, teacher_scores: jax.Array) -> jax.Array:
  """L_est: the estimator's S (SEAOutput.estimated_attention_score) against the teacher."""
  return causal_attention_kd(upsample_estimated_scores(estimated_score), teacher_scores)


def dense_score_loss(q: jax.Array, k: jax.Array, teacher_scores: jax.Array) -> jax.Array:
  """L_dense: the student's dense q k^T (q already scaled by D^-1/2) against the teacher."""
  scores = jnp.einsum("bhqd,bhkd->bhqk", q.astype(jnp.float32), k.astype(jnp.float32))
  return causal_attention_kd(scores, teacher_scores)


def context_loss(context: jax.Array, teacher_context: jax.Array) -> jax.Array:
  """L_ctx = MSE(teacher context, SEA context), both [N, T, H*D]."""
  return jnp.mean((teacher_context.astype(jnp.float32) - context.astype(jnp.float32)) ** 2)


def layer_distillation_loss(*, estimated_score, q, k, context, teacher_scores,
                            teacher_context) -> jax.Array:
  """One layer's `PerlinAttentionOutput.loss`: L_est + L_dense + L_ctx."""
  return (estimator_loss(estimated_score, teacher_scores) + dense_score_loss(q, k, teacher_scores)
          + context_loss(context, teacher_context))


def model_distillation_loss(*, student_ce: jax.Array, teacher_hidden: Sequence[jax.Array],
                            student_hidden: Sequence[jax.Array], teacher_logits: jax.Array,
                            student_logits: jax.Array,
                            layer_losses: Sequence[jax.Array]) -> jax.Array:
  """KDWrapperModel: 0.1 CE + 5 mean MSE(hidden) + 0.2 KL(logits) + mean layer loss."""
  if len(teacher_hidden) != len(student_hidden) or not teacher_hidden:
    raise ValueError(f"teacher_hidden/student_hidden have {len(teacher_hidden)}/"
                     f"{len(student_hidden)} entries; they must be equal and non-zero.")
  hidden = sum(jnp.mean((t.astype(jnp.float32) - s.astype(jnp.float32)) ** 2)
               for t, s in zip(teacher_hidden, student_hidden)) / len(teacher_hidden)
  v = student_logits.shape[-1]
  logit_kl = kl_batchmean(jax.nn.log_softmax(student_logits.reshape(-1, v).astype(jnp.float32)),
                          jax.nn.softmax(teacher_logits.reshape(-1, v).astype(jnp.float32)))
  special = sum(layer_losses) / len(layer_losses) if layer_losses else 0.0
  return 0.1 * student_ce + 5.0 * hidden + 0.2 * logit_kl + special
