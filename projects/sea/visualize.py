"""SEA's estimated attention next to the teacher's true attention, for one layer and head.

The estimate is read three ways: the compressed map P_hat [T, T_M] (bin b of query i covers keys
[b(i+1)/T_M, (b+1)(i+1)/T_M)), the same map at key resolution softmax(S_up) [T, T] (what L_est
compares with the teacher), and the kept (query, key) mask of the grouped top-k.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from projects.sea import losses, masks


@nnx.jit(static_argnums=(2,))
def _layer_maps(model, tokens, layer: int):
  teacher = model.teacher(tokens, return_scores=True).layers[layer]
  sea = model.student(tokens).layers[layer].sea
  t = tokens.shape[1]
  causal = jnp.tril(jnp.ones((t, t), bool))
  true = jax.nn.softmax(jnp.where(causal, teacher.scores.astype(jnp.float32), losses.FP_MIN), -1)
  est = jax.nn.softmax(losses.upsample_estimated_scores(sea.estimated_attention_score), -1)
  keep = masks.expand_keep_to_keys(sea.mask_compressed_keep)
  return true, est, sea.estimated_attention_probs_m, keep


def attention_maps(model, tokens, *, layer: int = 0, head: int = 0) -> dict[str, np.ndarray]:
  """Maps of the first sequence of `tokens` [N, T] for a DistillModel (teacher + SEA student)."""
  if model.student.layers[layer].self_attn.sea is None:
    raise ValueError(f"layer {layer} of the student is dense: pick a SEA layer.")
  true, est, comp, keep = (np.asarray(x[0, head]) for x in _layer_maps(model, tokens, layer))
  kl = float(np.sum(np.where(true > 0, true * (np.log(np.maximum(true, 1e-30))
                                                - np.log(np.maximum(est, 1e-30))), 0))
             / true.shape[0])
  return {"teacher": true, "estimate": est, "compressed": comp, "keep": keep.astype(bool),
          "kl": kl, "kept_fraction": float(keep.sum() / np.tril(np.ones_like(keep)).sum())}
