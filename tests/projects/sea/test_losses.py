"""Distillation losses against direct NumPy formulas."""
import jax
import numpy as np
import pytest

from projects.sea import losses


def _np_kd(student, teacher):
  t = student.shape[-1]
  causal = np.tril(np.ones((t, t), bool))
  def softmax(x):
    x = np.where(causal, x, -np.inf)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
  p_s, p_t = softmax(student.astype(np.float64)), softmax(teacher.astype(np.float64))
  with np.errstate(divide="ignore", invalid="ignore"):
    kl_terms = np.where(causal, p_t * (np.log(p_t) - np.log(p_s)), 0.0)
  rows = np.prod(student.shape[:-1])
  return 0.1 * kl_terms.sum() / rows + np.mean((p_s - p_t) ** 2)


def test_causal_attention_kd_matches_numpy():
  rng = np.random.default_rng(0)
  s, t = rng.standard_normal((2, 2, 3, 10, 10)).astype(np.float32)
  got = jax.jit(losses.causal_attention_kd)(s, t)
  np.testing.assert_allclose(float(got), _np_kd(s, t), rtol=1e-5)
  assert float(jax.jit(losses.causal_attention_kd)(t, t)) == pytest.approx(0.0, abs=1e-7)


def test_estimator_loss_uses_nearest_bin_map():
  rng = np.random.default_rng(1)
  score = rng.standard_normal((1, 2, 12, 4)).astype(np.float32)
  up = np.asarray(jax.jit(losses.upsample_estimated_scores)(score))
  i, j = 9, 5
  b = int(np.floor((j + 0.5) / (i + 1) * 4 - 1e-4))
  assert up[0, 1, i, j] == score[0, 1, i, b] and up[0, 0, 3, 7] == losses.FP_MIN
  teacher = rng.standard_normal((1, 2, 12, 12)).astype(np.float32)
  np.testing.assert_allclose(float(jax.jit(losses.estimator_loss)(score, teacher)),
                             _np_kd(np.where(up == losses.FP_MIN, 0, up), teacher), rtol=1e-5)


def test_model_loss_weights():
  rng = np.random.default_rng(2)
  z_t, z_s = rng.standard_normal((2, 2, 3, 7)).astype(np.float32)
  h_t, h_s = [np.zeros((2, 3, 4), np.float32)], [np.ones((2, 3, 4), np.float32)]
  got = jax.jit(losses.model_distillation_loss)(
      student_ce=np.float32(2.0), teacher_hidden=h_t, student_hidden=h_s, teacher_logits=z_t,
      student_logits=z_t, layer_losses=[np.float32(1.0), np.float32(3.0)])
  assert float(got) == pytest.approx(0.1 * 2 + 5 * 1 + 0 + 2, rel=1e-6)
  with pytest.raises(ValueError, match="teacher_hidden/student_hidden"):
    losses.model_distillation_loss(student_ce=0.0, teacher_hidden=h_t, student_hidden=[],
                                   teacher_logits=z_t, student_logits=z_s, layer_losses=[])
