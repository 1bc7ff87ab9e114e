"""BiFormer's bi-level routing attention in 1-D, causal, as a named mixer ('region').

Kept from BiFormer (bra.py, the 2-D original): tokens are split into regions of `region`
tokens; region-level queries and keys are the means of the region's q and k; the region
affinity Qr Kr^T (detached, float32, over the full q/k width so one index set serves every
head, as the official TopkRouting) picks the top regions; token-level softmax attention then
runs over the gathered regions (common.kernels.block_sparse_attention, one block per region).
The top-k is not differentiable: gradients reach q, k, v through the token attention only.

Changed for a causal 1-D sequence:
* query region i reads its own region (causal inside it) plus the top_regions - 1 earlier
  regions j < i by affinity (fewer while i < top_regions - 1; -1 pads the list). Later
  regions are never candidates.
* the routing query of region i is the mean q of region i - 1, not of region i: region i's
  own mean contains tokens after most of its queries, so routing on it would let a token's
  output depend on later tokens (the next token could steer which regions predict it).
  Routing therefore lags by one region. Region 0 routes nowhere (it has no earlier region).
* no LePE, no auto-padding: seq_len must be a multiple of `region`.
Options: region (64), top_regions (4). aux 0.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from common.kernels import block_sparse_attention as bsa
from common.layers import mixers


def causal_region_routing(q: jax.Array, k: jax.Array, region: int, top_regions: int) -> jax.Array:
  """q, k [B, H, T, D] -> int32 [B, H, T // region, n_sel] kv regions per query region.

  n_sel = min(top_regions, T // region); column 0 is the region itself, then earlier regions by
  descending affinity, -1 where there are not enough.
  """
  b, h, t, d = q.shape
  nr = t // region
  means = lambda x: jax.lax.stop_gradient(x).astype(jnp.float32).reshape(b, h, nr, region, d).mean(3)
  qr, kr = means(q), means(k)
  qr = jnp.concatenate([jnp.zeros_like(qr[:, :, :1]), qr[:, :, :-1]], axis=2)  # causal lag
  affinity = jnp.einsum("bhid,bhjd->bij", qr, kr)  # summed over heads: the full q/k width
  earlier = jnp.tril(jnp.ones((nr, nr), bool), k=-1)
  own = jnp.broadcast_to(jnp.arange(nr, dtype=jnp.int32)[:, None], (b, nr, 1))
  n_routed = min(top_regions, nr) - 1
  if n_routed > 0:
    scores, idx = jax.lax.top_k(jnp.where(earlier, affinity, -jnp.inf), n_routed)
    own = jnp.concatenate([own, jnp.where(scores > -jnp.inf, idx, -1).astype(jnp.int32)], -1)
  return jnp.broadcast_to(own[:, None], (b, h) + own.shape[1:])


class RegionAttention(nnx.Module):
  """Causal 1-D bi-level routing attention between the shared projections."""

  def __init__(self, spec: mixers.MixerSpec, options: dict, rngs: nnx.Rngs):
    o = mixers.take_options("region", options, {"region": 64, "top_regions": 4})
    if o["region"] < 1 or o["top_regions"] < 1 or spec.seq_len % o["region"]:
      raise ValueError(f"mixer 'region': region={o['region']} and top_regions="
                       f"{o['top_regions']} must be positive and seq_len={spec.seq_len} a "
                       "multiple of region.")
    self.region, self.top_regions = o["region"], o["top_regions"]
    self.impl = spec.attention_impl
    self.proj = mixers.Projections(spec, rngs=rngs)

  def __call__(self, x, *, train: bool = False, rngs=None):
    q, k, v = self.proj.split(x)
    if q.shape[2] % self.region:
      raise ValueError(f"mixer 'region': sequence length {q.shape[2]} is not a multiple of "
                       f"region={self.region}.")
    idx = causal_region_routing(q, k, self.region, self.top_regions)
    o = bsa.block_sparse_attention(q, k, v, idx, block_q=self.region, block_k=self.region,
                                   causal=True, impl=self.impl)
    return self.proj.merge(o), mixers.ZERO


mixers.register("region", RegionAttention)
