"""Causal Performer with the generalized ReLU kernel: SEA's attention-estimator backbone.

SEA runs performer-pytorch 1.1.4 `FastAttention(causal=True, generalized_attention=True)`
on (q, k, [positional code | v]). Its output is the first half of the estimator's input.

Feature map (performer_pytorch.py `generalized_kernel`):
  phi(x) = relu((D**-0.25 * x) @ P.T) + 1e-3,   P: [m, D] Gaussian orthogonal random matrix.
Causal linear attention (`causal_linear_attention_noncuda`):
  out_i = phi(q_i) . sum_{j<=i} phi(k_j) v_j^T / (phi(q_i) . (sum_{j<=i} phi(k_j) + 1e-6)).

We evaluate it chunk-wise (quadratic inside a chunk, a running [m, E] state across chunks),
which is exact in real arithmetic and O(T) in memory.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from common.layers import prefix_sums

# performer_pytorch.py `generalized_kernel(kernel_epsilon=0.001)`: keeps every feature > 0.
FEATURE_EPS = 1e-3
# performer_pytorch.py `causal_linear_attention*(eps=1e-6)`: added to the running key sum.
DENOMINATOR_EPS = 1e-6


class PerformerProjection(nnx.Variable):
  """The fixed random projection P [m, D]: a buffer, not a trained parameter.

  SEA never redraws it in forward (`ProjectionUpdater.redraw_projections` is not called from
  `PerlinAttention.forward`), so it is a separate Variable type that optimisers skip.
  """


def nb_features_for(head_dim: int, nb_factor: int) -> int:
  """Number of random features m, as `PerlinAttention.__init__` computes it (int(D ln D / nbf))."""
  if head_dim < 2:
    raise ValueError(f"head_dim={head_dim} is not allowed: it must be >= 2 (m = D ln D / nbf).")
  if nb_factor <= 0:
    raise ValueError(f"performer_nb_factor={nb_factor} is not allowed: it must be a positive "
                     "number.")
  m = int(head_dim * math.log(head_dim) / nb_factor)
  if m < 1:
    raise ValueError(
        f"performer_nb_factor={nb_factor} with head_dim={head_dim} gives {m} Performer features; "
        "it must give at least 1.")
  return m


def gaussian_orthogonal_random_matrix(key: jax.Array, nb_rows: int, nb_columns: int) -> jax.Array:
  """Stacked orthogonal blocks with Gaussian row norms (performer's `scaling=0` recipe)."""
  n_blocks = -(-nb_rows // nb_columns)
  keys = jax.random.split(key, n_blocks + 1)
  blocks = []
  for i in range(n_blocks):
    q, _ = jnp.linalg.qr(jax.random.normal(keys[i], (nb_columns, nb_columns), jnp.float32))
    blocks.append(q.T)
  matrix = jnp.concatenate(blocks, axis=0)[:nb_rows]
  gaussian = jax.random.normal(keys[-1], (nb_rows, nb_columns), jnp.float32)
  multiplier = jnp.linalg.norm(gaussian, axis=1)
  return multiplier[:, None] * matrix


def generalized_relu_features(x: jax.Array, projection: jax.Array) -> jax.Array:
  """phi(x) = relu((D**-0.25 x) P^T) + 1e-3; x [..., D], projection [m, D] -> [..., m]."""
  normalizer = x.shape[-1] ** -0.25
  dash = jnp.einsum("...d,md->...m", normalizer * x, projection)
  return jax.nn.relu(dash) + FEATURE_EPS


def causal_linear_attention(q_feat: jax.Array, k_feat: jax.Array, v: jax.Array, *,
                            chunk_size: int = 64, eps: float = DENOMINATOR_EPS) -> jax.Array:
  """Causal linear attention over positive features.

  Args:
    q_feat: [..., T, m] query features.
    k_feat: [..., T, m] key features.
    v: [..., T, E] values.
    chunk_size: tokens per chunk (memory vs. parallelism); the result does not depend on it
      beyond fp32 rounding.
    eps: added to every entry of the running key sum, as performer-pytorch does.

  Returns:
    [..., T, E].
  """
  if chunk_size < 1:
    raise ValueError(f"chunk_size={chunk_size} is not allowed: it must be >= 1.")
  t = q_feat.shape[-2]
  c = min(chunk_size, t)
  n_chunks = -(-t // c)
  pad = n_chunks * c - t
  if pad:
    # Zero keys/values appended at the end cannot reach earlier (causal) queries.
    padding = [(0, 0)] * (q_feat.ndim - 2) + [(0, pad), (0, 0)]
    q_feat, k_feat, v = (jnp.pad(a, padding) for a in (q_feat, k_feat, v))
  lead = q_feat.shape[:-2]
  qc = q_feat.reshape(*lead, n_chunks, c, q_feat.shape[-1])
  kc = k_feat.reshape(*lead, n_chunks, c, k_feat.shape[-1])
  vc = v.reshape(*lead, n_chunks, c, v.shape[-1])

  # Sums over all previous chunks (exclusive prefix over the chunk axis).
  kv_chunk = jnp.einsum("...cm,...ce->...me", kc, vc)
  k_chunk = kc.sum(axis=-2)
  kv_prev = prefix_sums.prefix_sum(kv_chunk, axis=-3) - kv_chunk
  k_prev = prefix_sums.prefix_sum(k_chunk, axis=-2) - k_chunk

  causal = jnp.tril(jnp.ones((c, c), dtype=bool))
  scores = jnp.where(causal, jnp.einsum("...im,...jm->...ij", qc, kc), 0.0)
  num = jnp.einsum("...ij,...je->...ie", scores, vc) + jnp.einsum("...im,...me->...ie", qc, kv_prev)
  den = (scores.sum(axis=-1) + jnp.einsum("...im,...m->...i", qc, k_prev)
         + eps * qc.sum(axis=-1))
  out = num / den[..., None]
  return out.reshape(*lead, n_chunks * c, v.shape[-1])[..., :t, :]


class CausalPerformer(nnx.Module):
  """performer-pytorch `FastAttention(causal=True, generalized_attention=True)`, always in fp32.

  SEA casts the Performer's inputs to fp32 even under autocast (`attention.py`, PRECISION_PERF),
  so this module ignores the layer's compute dtype.
  """

  def __init__(self, head_dim: int, nb_features: int, *, chunk_size: int = 64, rngs: nnx.Rngs):
    self.head_dim = head_dim
    self.nb_features = nb_features
    self.chunk_size = chunk_size
    self.projection = PerformerProjection(
        gaussian_orthogonal_random_matrix(rngs.params(), nb_features, head_dim),
        out_sharding=(None, None))

  def __call__(self, q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """q, k [..., T, D], v [..., T, E] -> [..., T, E] (fp32)."""
    projection = self.projection[...].astype(jnp.float32)
    q_feat = generalized_relu_features(q.astype(jnp.float32), projection)
    k_feat = generalized_relu_features(k.astype(jnp.float32), projection)
    return causal_linear_attention(q_feat, k_feat, v.astype(jnp.float32),
                                   chunk_size=self.chunk_size)
