"""Multi-head attention: routing heads, then local heads (TF `multihead_attention_nd`).

  q, k, v = x Wq, x Wk, x Wv (no bias); q *= d^-1/2
  heads [0, Hr) : routing (routing_attention.py), shared QK, k-means state in this module
  heads [Hr, H) : local   (local_attention.py)
  o = concat heads -> Dense(d -> d) per head, shared across heads ("allow heads to talk to each
      other" in TF attention_nd) -> combine -> Dense(H*d -> hidden) (output_transform)

The k-means state (means, ema_means, ema_count) are `KMeansState` variables of this module; in
train mode the forward replaces them with the EMA update from its own assignments, so the
trainer's jit-compiled step carries the new values in state['model_state'].
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from common.layers.dropout import dropout as dropout_fn
from common.layers.linear import Linear
from projects.routing_transformer import kmeans, local_attention, routing_attention


class RoutingSelfAttention(nnx.Module):
  """Causal self-attention with `num_routing_heads` routed and `num_local_heads` local heads.

  Returns (output [B, n, hidden], clustering loss scalar). The loss is TF's
  `q_clustering_loss + k_clustering_loss`; with share_qk both are the same tensor, so it is
  2 * beta * e_loss (spec §1.3), and it is returned in train and eval mode alike.
  """

  def __init__(self, hidden: int, *, num_local_heads: int, num_routing_heads: int,
               head_dim: int, num_clusters: int, window: int, query_block: int,
               memory_flange: int, local_relative: bool, routing_relative: bool,
               max_relative_position: int, attention_dropout: float, decay: float, beta: float,
               routing_mask_self: bool = False, routing_scale_logits: bool = False,
               attention_impl: str = "auto", kernel_init, dtype: Any = None,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    """`attention_impl`: config.model.attention_impl, handed to the heads unchanged
    ('official' or a common.kernels impl; see window_attention.runs_official).
    `routing_mask_self`, `routing_scale_logits`: the routing heads' numerics (False: official;
    routing_attention.py)."""
    num_heads = num_local_heads + num_routing_heads
    if num_heads <= 0:
      raise ValueError(f"num_local_heads + num_routing_heads must be >= 1; got "
                       f"{num_local_heads} + {num_routing_heads}.")
    self.num_local_heads, self.num_routing_heads = num_local_heads, num_routing_heads
    self.head_dim, self.num_clusters, self.window = head_dim, num_clusters, window
    self.query_block, self.memory_flange = query_block, memory_flange
    self.max_relative_position = max_relative_position
    self.routing_mask_self, self.routing_scale_logits = routing_mask_self, routing_scale_logits
    self.decay, self.beta = decay, beta
    self.attention_dropout = attention_dropout
    self.attention_impl = attention_impl
    self.dtype = dtype

    def dense(n_in, n_out, axes):
      return Linear(n_in, n_out, use_bias=False, kernel_axes=axes, kernel_init=kernel_init,
                    dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    inner = num_heads * head_dim
    self.wq = dense(hidden, inner, ("embed", "heads"))
    self.wk = dense(hidden, inner, ("embed", "heads"))
    self.wv = dense(hidden, inner, ("embed", "heads"))
    self.head_mix = dense(head_dim, head_dim, ("kv", None))
    self.wo = dense(inner, hidden, ("heads", "embed"))

    def table():
      init = nnx.with_partitioning(kernel_init, (None, "kv"))
      return nnx.Param(init(rngs.params(), (2 * max_relative_position + 1, head_dim), param_dtype))

    use_local_rel = local_relative and num_local_heads > 0
    use_routing_rel = routing_relative and num_routing_heads > 0
    if (use_local_rel or use_routing_rel) and max_relative_position <= 0:
      raise ValueError(f"config.model.max_relative_position={max_relative_position} must be > 0 "
                       "when relative positions are on (local_relative / routing_relative).")
    # Separate tables per head type and for keys and values, as the separate TF variable scopes.
    self.local_rel_k = table() if use_local_rel else None
    self.local_rel_v = table() if use_local_rel else None
    self.routing_rel_k = table() if use_routing_rel else None
    self.routing_rel_v = table() if use_routing_rel else None

    if num_routing_heads:
      means = kmeans.init_means(rngs.params(), num_routing_heads, num_clusters, head_dim)
      self.means = kmeans.KMeansState(means)
      self.ema_means = kmeans.KMeansState(means)
      self.ema_count = kmeans.KMeansState(jnp.zeros((num_routing_heads, num_clusters),
                                                    jnp.float32))
    else:
      self.means = self.ema_means = self.ema_count = None

  def _dropout(self, train: bool, rngs: nnx.Rngs | None):
    """Dropout on the attention probabilities (a callable for window_attention), or None."""
    if not train or self.attention_dropout == 0.0:
      return None
    if rngs is None:
      raise ValueError(f"attention_dropout={self.attention_dropout} in train mode needs `rngs` "
                       "with a 'dropout' stream; got rngs=None.")
    return lambda p: dropout_fn(p, self.attention_dropout, train=True, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> tuple[jax.Array, jax.Array]:
    b, n, _ = x.shape
    h, d = self.num_local_heads + self.num_routing_heads, self.head_dim
    hr = self.num_routing_heads
    split = lambda t: t.reshape(b, n, -1, d).transpose(0, 2, 1, 3)
    q = split(self.wq(x)) * d ** -0.5
    v = split(self.wv(x))
    # Only the local heads read k (the routing heads share q as k), so the routing heads'
    # columns of wk, which the official layer also holds, are not computed.
    k = split(self.wk(x, columns=slice(hr * d, None)))
    dropout = self._dropout(train, rngs)
    outs, loss = [], jnp.zeros((), jnp.float32)
    if hr:
      o, loss = self._routing(q[:, :hr], v[:, :hr], train=train, dropout=dropout)
      outs.append(o)
    if self.num_local_heads:
      rel = self.local_rel_k is not None
      outs.append(local_attention.local_attention(
          q[:, hr:], k, v[:, hr:], block=self.query_block, flange=self.memory_flange,
          impl=self.attention_impl, rel_keys=self.local_rel_k[...] if rel else None,
          rel_values=self.local_rel_v[...] if rel else None,
          max_relative_position=self.max_relative_position, dropout=dropout))
    o = self.head_mix(jnp.concatenate(outs, axis=1))
    o = o.transpose(0, 2, 1, 3).reshape(b, n, h * d)
    return self.wo(o), loss

  def _routing(self, q, v, *, train: bool, dropout):
    n = q.shape[2]
    if self.window > n:
      raise ValueError(f"config.model.window={self.window} exceeds the sequence length {n}.")
    x = kmeans.layer_norm_no_params(q)  # TF: k = q (share_qk) before the LN, so x serves both
    means = self.means[...]
    scores, onehot = kmeans.assign(x, means)
    idx = routing_attention.select_windows(scores, self.window)
    o = self.routed(x, v, idx, dropout=dropout)
    # share_qk: TF adds q_clustering_loss + k_clustering_loss, the same tensor twice.
    loss = 2.0 * self.beta * kmeans.commitment_loss(x, onehot, means)
    if train:
      new_means, new_ema_means, new_count = kmeans.ema_update(
          x, onehot, self.ema_means[...], self.ema_count[...], decay=self.decay)
      self.means[...] = new_means
      self.ema_means[...] = new_ema_means
      self.ema_count[...] = new_count
    return o, loss

  def routed(self, x, v, idx, *, dropout=None):
    """The routing heads' attention in windows `idx` with this layer's settings (also used by
    decoding.py): x = LN(q) [B, Hr, n, d], v [B, Hr, n, d], idx [B, Hr, K, w]."""
    rel = self.routing_rel_k is not None
    return routing_attention.routed_attention(
        x, v, idx, causal=True, impl=self.attention_impl,
        rel_keys=self.routing_rel_k[...] if rel else None,
        rel_values=self.routing_rel_v[...] if rel else None,
        max_relative_position=self.max_relative_position, dropout=dropout,
        mask_self=self.routing_mask_self, scale_logits=self.routing_scale_logits)
