"""Online mini-batch k-means of the routing heads, as the official TF code does it.

Port of `cluster_items` / `online_kmeans` in google-research `routing_transformer/utils.py`
(spec: shared/specs/sequence.md §1.3), not of the paper's Algorithm 1:

  assignment   c(i) = argmax_c x_i . mu_c                (dot product, not Euclidean distance)
  count        n_c  = sum_{b,s} onehot                   [H, K]
  ema_count    <- decay * ema_count + (1 - decay) * n_c  (no zero-debias)
  ema_means    <- decay * ema_means + (1 - decay) * sum_{b,s} onehot (x) x
  cnt          = (ema_count + eps) / (N_h + K eps) * N_h,  N_h = sum_c ema_count   (Laplace)
  means        <- ema_means / cnt                        (no re-projection onto the sphere)

The statistics live in `KMeansState` variables: not `nnx.Param`, so the optimiser never sees
them and the trainer carries them in `state['model_state']`; the forward overwrites them in
train mode, i.e. inside the jit-compiled train step, from the same forward's assignments
(computed with the old means).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

LAPLACE_EPS = 1e-5  # TF online_kmeans `epsilon`


class KMeansState(nnx.Variable):
  """Centroids and their EMA statistics: model state updated by the forward, never by grads."""


def layer_norm_no_params(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  """LayerNorm over the last axis without scale or bias (TF `layer_norm(x, scaling=False)`)."""
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
  return ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


def init_means(key: jax.Array, num_heads: int, num_clusters: int, head_dim: int) -> jax.Array:
  """means = LN(randn) of shape [H, K, d], as the official initialiser."""
  return layer_norm_no_params(jax.random.normal(key, (num_heads, num_clusters, head_dim)))


def assign(x: jax.Array, means: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Scores x . mu [B, H, n, K] (TF's dist is their negation) and the argmax one-hot."""
  scores = jnp.einsum("bhnd,hkd->bhnk", x.astype(jnp.float32), means.astype(jnp.float32))
  onehot = jax.nn.one_hot(jnp.argmax(scores, axis=-1), means.shape[1], dtype=jnp.float32)
  return scores, onehot


def ema_update(x: jax.Array, onehot: jax.Array, ema_means: jax.Array, ema_count: jax.Array, *,
               decay: float, eps: float = LAPLACE_EPS) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One EMA step from a batch: returns (new means, new ema_means, new ema_count).

  x [B, H, n, d] (layer-normed), onehot [B, H, n, K], ema_means [H, K, d], ema_count [H, K].
  Sums over batch and positions; under jit on sharded arrays this is the global (cross-replica)
  sum, as TF's `cross_replica_sum` on TPU.
  """
  x = jax.lax.stop_gradient(x.astype(jnp.float32))
  onehot = jax.lax.stop_gradient(onehot)
  count = jnp.sum(onehot, axis=(0, 2))
  dw = jnp.einsum("bhnk,bhnd->hkd", onehot, x)
  new_count = decay * ema_count + (1.0 - decay) * count
  new_ema_means = decay * ema_means + (1.0 - decay) * dw
  total = jnp.sum(new_count, axis=-1, keepdims=True)
  num_clusters = ema_count.shape[-1]
  smoothed = (new_count + eps) / (total + num_clusters * eps) * total
  return new_ema_means / smoothed[..., None], new_ema_means, new_count


def commitment_loss(x: jax.Array, onehot: jax.Array, means: jax.Array) -> jax.Array:
  """e_loss = mean((x - sg(mu_assigned))^2) over batch, heads, positions and features."""
  assigned = jnp.einsum("bhnk,hkd->bhnd", onehot, jax.lax.stop_gradient(means))
  return jnp.mean(jnp.square(x.astype(jnp.float32) - assigned))
