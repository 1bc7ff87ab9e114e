"""SEA and its Performer backbone as named mixers ('sea', 'performer') for common.layers.mixers.

performer  causal linear attention (projects.sea.performer.CausalPerformer, generalized ReLU
           kernel, int(D ln D / nb_factor) random features) on q (scaled by D^-1/2, as OPT
           scales it before SEA), k, v: SEA's estimator backbone alone, the paper's "Performer"
           row. Options: nb_factor (8, SEA's performer_nb_factor). aux 0.
sea        projects.sea.attention.SEAAttention on the same q, k, v; its context [B, T, H*D]
           goes through the output projection. max_position_embeddings = seq_len,
           attention_impl from the spec (a common.kernels impl, which SEA accepts unchanged).
           Options: k (64), predictor_length (128, divisible by 4), performer_nb_factor (8),
           estimator_weight (1.0).

Our use of SEA differs from the paper's: the paper distils a SEA model from a pretrained dense
teacher (projects/sea/task.py 'distill'), whose q k^T trains the estimator. Here SEA is trained
from scratch inside a small LM, and the top-k selection gives the estimator no gradient, so the
layer distils from itself: aux = estimator_weight * losses.estimator_loss(S, stop_gradient(q k^T))
with q k^T this layer's own dense causal scores (q pre-scaled, raw, unmasked: exactly the
teacher's `scores` of projects/sea/opt.py; the loss applies the causal mask). It is returned in
train and eval mode alike and costs [B, H, T, T] memory, as the dense layer it estimates.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from common.layers import mixers
from projects.sea import losses
from projects.sea.attention import SEAAttention
from projects.sea.performer import CausalPerformer, nb_features_for


def _scaled_qkv(proj: mixers.Projections, x: jax.Array):
  q, k, v = proj.split(x)
  return q * q.shape[-1] ** -0.5, k, v  # OPT's q_proj scaling, which SEA's layer expects


class PerformerMixer(nnx.Module):
  """Causal Performer attention (SEA's estimator backbone) between the shared projections."""

  def __init__(self, spec: mixers.MixerSpec, options: dict, rngs: nnx.Rngs):
    o = mixers.take_options("performer", options, {"nb_factor": 8})
    self.proj = mixers.Projections(spec, rngs=rngs)
    self.performer = CausalPerformer(spec.head_dim, nb_features_for(spec.head_dim,
                                                                    o["nb_factor"]), rngs=rngs)

  def __call__(self, x, *, train: bool = False, rngs=None):
    q, k, v = _scaled_qkv(self.proj, x)
    return self.proj.merge(self.performer(q, k, v).astype(v.dtype)), mixers.ZERO


class SEAMixer(nnx.Module):
  """SEA attention with its estimator trained by self-distillation (the aux loss)."""

  def __init__(self, spec: mixers.MixerSpec, options: dict, rngs: nnx.Rngs):
    o = mixers.take_options("sea", options, {"k": 64, "predictor_length": 128,
                                             "performer_nb_factor": 8, "estimator_weight": 1.0})
    self.estimator_weight = float(o["estimator_weight"])
    self.proj = mixers.Projections(spec, rngs=rngs)
    self.sea = SEAAttention(spec.num_heads, spec.head_dim, k=o["k"],
                            predictor_length=o["predictor_length"],
                            performer_nb_factor=o["performer_nb_factor"],
                            max_position_embeddings=spec.seq_len,
                            attention_impl=spec.attention_impl, dtype=spec.dtype,
                            param_dtype=spec.param_dtype, rngs=rngs)

  def __call__(self, x, *, train: bool = False, rngs=None):
    q, k, v = _scaled_qkv(self.proj, x)
    out = self.sea(q, k, v)
    aux = mixers.ZERO
    if self.estimator_weight:
      # The teacher: this layer's own dense scores, a target only (no gradient into q, k).
      teacher = jax.lax.stop_gradient(
          jnp.einsum("bhqd,bhkd->bhqk", q.astype(jnp.float32), k.astype(jnp.float32)))
      aux = self.estimator_weight * losses.estimator_loss(out.estimated_attention_score, teacher)
    return self.proj.wo(out.context), aux.astype(jnp.float32)


mixers.register("performer", PerformerMixer)
mixers.register("sea", SEAMixer)
