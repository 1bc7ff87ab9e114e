"""The Monet router: two sub-routers per head with a batch-norm quantile threshold.

Official: dmis-lab/Monet@b5cb786 modeling_monet.py `MonetRouter` [M:L115-141]; spec
shared/specs/experts.md §1.4. For each routing head h and sub-router s in {1, 2}:

  z  = W_s x                              (B, T, H, E), float32
  n  = BatchNorm1d(H, affine=False)(z)    statistics per head, pooled over B, T and E
  s* = min(max_e n, Phi^-1(1 - k/E))      the clamp keeps the argmax selected
  g  = softmax_e(where(n >= s*, z, -1e10))  softmax over the RAW logits z, not over n

Training mode normalises with the batch statistics and updates running statistics (torch
semantics: momentum 0.1, unbiased running variance); eval mode uses the running statistics. Switch
with `model.train()` / `model.eval()` (the `use_running_average` attribute, as nnx.BatchNorm).
"""
from __future__ import annotations

import functools
import statistics

import jax
import jax.numpy as jnp
from flax import nnx

from projects.monet.config import MonetConfig
from projects.monet.layers import DEFAULT_INIT, KeySeq, param

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

  def __init__(self, cfg: MonetConfig, *, rngs: nnx.Rngs, use_running_average: bool = False):
    d, h, e = cfg.hidden_size, cfg.moe_heads, cfg.moe_experts
    self.heads, self.experts = h, e
    self.sigma = routing_threshold(cfg.moe_topk, e)
    self.eps, self.momentum = cfg.bn_eps, cfg.bn_momentum
    self.dtype = cfg.dtype
    self.use_running_average = use_running_average
    # torch Linear(d, H*E) reshaped to (d, H, E): flat output index h*E + e ([M:L128]).
    keys = KeySeq.of(rngs)
    self.w1 = param(keys, DEFAULT_INIT, (d, h, e), ("embed", None, "expert"), cfg.param_dtype)
    self.w2 = param(keys, DEFAULT_INIT, (d, h, e), ("embed", None, "expert"), cfg.param_dtype)
    # BatchNorm1d(H, affine=False) buffers; statistics stay float32 whatever the param dtype.
    self.mean1 = nnx.BatchStat(jnp.zeros((h,), jnp.float32))
    self.var1 = nnx.BatchStat(jnp.ones((h,), jnp.float32))
    self.mean2 = nnx.BatchStat(jnp.zeros((h,), jnp.float32))
    self.var2 = nnx.BatchStat(jnp.ones((h,), jnp.float32))

  def _normalise(self, z: jax.Array, mean_var: nnx.BatchStat, var_var: nnx.BatchStat) -> jax.Array:
    # n only decides the selection mask, so no gradient is lost by cutting it here.
    z = jax.lax.stop_gradient(z)
    if self.use_running_average:
      mean, var = mean_var[...], var_var[...]
    else:
      mean = jnp.mean(z, axis=(0, 1, 3))
      var = jnp.mean(jnp.square(z - mean[:, None]), axis=(0, 1, 3))  # biased, as torch normalises
      count = z.size // z.shape[2]
      unbiased = var * (count / max(count - 1, 1))
      mean_var[...] = (1.0 - self.momentum) * mean_var[...] + self.momentum * mean
      var_var[...] = (1.0 - self.momentum) * var_var[...] + self.momentum * unbiased
    return (z - mean[:, None]) * jax.lax.rsqrt(var[:, None] + self.eps)

  def _route(self, z: jax.Array, mean_var: nnx.BatchStat, var_var: nnx.BatchStat) -> jax.Array:
    n = self._normalise(z, mean_var, var_var)
    threshold = jnp.minimum(jnp.max(n, axis=-1, keepdims=True), self.sigma)
    return jax.nn.softmax(jnp.where(n >= threshold, z, _UNSELECTED), axis=-1)

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    dt = self.dtype
    x = x.astype(dt)
    # The matmul runs in the model dtype and the logits are then cast to float32 ([M:L131-132]).
    z1 = jnp.einsum("btd,dhe->bthe", x, self.w1[...].astype(dt)).astype(jnp.float32)
    z2 = jnp.einsum("btd,dhe->bthe", x, self.w2[...].astype(dt)).astype(jnp.float32)
    return self._route(z1, self.mean1, self.var1), self._route(z2, self.mean2, self.var2)
