"""The Monet router: two sub-routers per head with a batch-norm quantile threshold.

Official: dmis-lab/Monet@b5cb786 modeling_monet.py `MonetRouter` [M:L115-141]; spec
shared/specs/experts.md §1.4. For each routing head h and sub-router s in {1, 2}:

  z  = W_s x                              (B, T, H, E), float32
  n  = BatchNorm1d(H, affine=False)(z)    statistics per head, pooled over B, T and E
  s* = min(max_e n, Phi^-1(1 - k/E))      the clamp keeps the argmax selected
  g  = softmax_e(where(n >= s*, z, -1e10))  softmax over the RAW logits z, not over n

`train=True` normalises with the batch statistics and updates the running statistics (torch
semantics: momentum 0.1, unbiased running variance); `train=False` (the default) uses the running
statistics. The BatchNorm is `common.layers.norms.BatchNorm(axis=2, affine off)`.
"""
from __future__ import annotations

import functools
import statistics

import jax
import jax.numpy as jnp
from flax import nnx

from common.layers.keys import KeyStream, param
from common.layers.norms import BatchNorm
from projects.monet.attention import DEFAULT_INIT
from projects.monet.config import MonetConfig

# Fill value of unselected logits [M:L139-140]; exp underflows to exactly 0 in float32.
_UNSELECTED = -1e10


@functools.lru_cache(maxsize=None)
def routing_threshold(topk: int, experts: int) -> float:
  """sigma* = Phi^-1(1 - k/E) as a Python float, as the official code computes it with scipy."""
  q = 1.0 - topk / experts
  try:
    from scipy.stats import norm  # pylint: disable=g-import-not-at-top
    return float(norm.ppf(q))
  except ImportError:
    # The stdlib inverse CDF agrees with scipy to a few ulp (1e-15), far below any routing margin.
    return statistics.NormalDist().inv_cdf(q)


class MonetRouter(nnx.Module):
  """Routing probabilities (g1, g2), each (B, T, moe_heads, moe_experts) float32, rows sum to 1."""

  def __init__(self, cfg: MonetConfig, *, rngs: nnx.Rngs):
    d, h, e = cfg.hidden_size, cfg.moe_heads, cfg.moe_experts
    self.heads, self.experts = h, e
    self.sigma = routing_threshold(cfg.moe_topk, e)
    self.dtype = cfg.dtype
    # torch Linear(d, H*E) reshaped to (d, H, E): flat output index h*E + e ([M:L128]).
    keys = KeyStream.of(rngs)
    self.w1 = param(DEFAULT_INIT, ("embed", None, "expert"), keys, (d, h, e), cfg.param_dtype)
    self.w2 = param(DEFAULT_INIT, ("embed", None, "expert"), keys, (d, h, e), cfg.param_dtype)
    # BatchNorm1d(H, affine=False) on (B*T, H, E): statistics per head over tokens and experts;
    # they stay float32 whatever the param dtype.
    bn = dict(axis=2, epsilon=cfg.bn_eps, momentum=cfg.bn_momentum, use_scale=False,
              use_bias=False, param_axes=(None,))
    self.norm1 = BatchNorm(h, **bn)
    self.norm2 = BatchNorm(h, **bn)

  def _route(self, z: jax.Array, norm: BatchNorm, train: bool) -> jax.Array:
    # n only decides the selection mask, so no gradient is lost by cutting it here.
    n = norm(jax.lax.stop_gradient(z), train=train)
    threshold = jnp.minimum(jnp.max(n, axis=-1, keepdims=True), self.sigma)
    return jax.nn.softmax(jnp.where(n >= threshold, z, _UNSELECTED), axis=-1)

  def __call__(self, x: jax.Array, *, train: bool = False, rngs: nnx.Rngs | None = None
               ) -> tuple[jax.Array, jax.Array]:
    del rngs  # routing draws nothing
    dt = self.dtype
    x = x.astype(dt)
    # The matmul runs in the model dtype and the logits are then cast to float32 ([M:L131-132]).
    z1 = jnp.einsum("btd,dhe->bthe", x, self.w1[...].astype(dt)).astype(jnp.float32)
    z2 = jnp.einsum("btd,dhe->bthe", x, self.w2[...].astype(dt)).astype(jnp.float32)
    return self._route(z1, self.norm1, train), self._route(z2, self.norm2, train)
