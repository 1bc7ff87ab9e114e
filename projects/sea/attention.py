"""The SEA attention layer (causal OPT variant): estimate the attention, keep the top cells, attend.

Port of `PerlinAttention` (gmlwns2000/sea-attention@5609413b, src/models/perlin_attention/
attention.py) on its reference path in eval mode, with `causal=True`, `k_flatten_dim=
'causal_batch'`, the mlp predictor, the performer backend, `context_output_method='mix'`,
LoRA off. Per layer, with q (pre-scaled by D^-1/2, as OPT does), k, v [N, H, T, D]:

  1. Performer on (q, k, [learned positional code | v]) -> [N, H, T, 2D].
  2. Encoder on [performer | v] -> t; CNN decoder -> S [N, H, T, T_M]; P_hat = softmax(S).
  3. Grouped top-k across heads with the per-row budget round(H*k*T_M/(i+1)); nearest map of
     the kept bins back to keys (masks.py).
  4. Softmax of q k^T over the kept keys, times sigma(s0); context O_sp (sparse_attention.py).
  5. O = sigma(s1) O_sp + (1 - sigma(s1)) cumulative-mean(v); heads merged -> [N, T, H*D].
(s0, s1) = Linear(2D -> 2)(t). The caller applies OPT's out_proj.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from common.kernels import dispatch
from common.kernels import row_sparse_attention as kernels_row_sparse
from common.layers import prefix_sums
from projects.sea import masks
from projects.sea import sparse_attention
from projects.sea.config import ATTENTION_IMPLS, OFFICIAL
from projects.sea.estimator import AttentionEncoder, CompressedScoreDecoder, make_linear
from projects.sea.performer import CausalPerformer, nb_features_for


class SEAOutput(NamedTuple):
  """What one SEA layer returns.

  Attributes:
    context: [N, T, H*D] mixed context, heads merged (before the output projection).
    estimated_attention_score: S [N, H, T, T_M], the estimator's logits (for distillation).
    estimated_attention_probs_m: P_hat = softmax(S) [N, H, T, T_M], the estimated (compressed)
      attention matrix: bin b of query i covers keys [b(i+1)/T_M, (b+1)(i+1)/T_M).
    mask_compressed_keep: bool [N, H, T, T_M], the kept cells.
    key_indices: int32 [N, H, T, K] kept keys per query, ascending, padded with 0 (the Pallas
      implementations, and every row-sparse one with return_intermediates; else None).
    key_valid: bool [N, H, T, K], False on padded slots (None where key_indices is).
    intermediates: with return_intermediates=True, a dict of the official debug buffers under
      their golden names and layouts (see SEAAttention.__call__); else None.
  """
  context: jax.Array
  estimated_attention_score: jax.Array
  estimated_attention_probs_m: jax.Array
  mask_compressed_keep: jax.Array
  key_indices: jax.Array | None
  key_valid: jax.Array | None
  intermediates: dict[str, jax.Array] | None


class SEAAttention(nnx.Module):
  """SEA attention core (PerlinAttention, causal): q, k, v [N, H, T, D] -> SEAOutput."""

  def __init__(self, num_heads: int, head_dim: int, *, k: int, predictor_length: int,
               performer_nb_factor: int = 8, max_position_embeddings: int = 2048,
               k_oversample: float = 1.0, partial_attention_scaler: bool = True,
               attention_impl: str = "auto", performer_chunk_size: int = 64,
               dtype: Any = None, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    """Builds the layer.

    Args:
      num_heads: H.
      head_dim: D (>= 2).
      k: keys kept per query and head on average (the budget is H*k*T_M/(i+1) cells over
        all heads; `PerlinAttentionConfig.k`).
      predictor_length: T_M, the estimator's compressed width (`attention_predictor_length`);
        must be divisible by 4.
      performer_nb_factor: nbf; the Performer uses int(D ln D / nbf) random features.
      max_position_embeddings: length of the learned positional value code (longest T).
      k_oversample: only 1.0 (the official default) is supported.
      partial_attention_scaler: multiply the sparse probabilities by sigma(s0) (official default).
      attention_impl: "official" (the official computation: q k^T under a dense [T, T] keep
        mask; golden tests), or a common.kernels impl ("auto", the default, "xla",
        "reference", "pallas_tpu", "pallas_gpu", "interpret") handed unchanged to
        common.kernels.row_sparse_attention over per-head kept-key lists; where it resolves
        to "xla" (CPU), sparse_attention.grouped_list_attention over lists shared by a
        query's heads instead (the same values, H times fewer padded slots).
      performer_chunk_size: tokens per chunk of the causal linear attention (memory only).
      dtype: compute dtype of the projections and CNN (None: from inputs/params). The Performer,
        P_hat and the selection always run in fp32, as the official code does.
      param_dtype: parameter dtype.
      rngs: random streams for initialisation.
    """
    for name, value in (("num_heads", num_heads), ("k", k), ("predictor_length", predictor_length),
                        ("max_position_embeddings", max_position_embeddings),
                        ("performer_chunk_size", performer_chunk_size)):
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is not allowed: it must be a positive integer.")
    if not isinstance(head_dim, int) or head_dim < 2:
      raise ValueError(f"head_dim={head_dim!r} is not allowed: it must be an integer >= 2.")
    if predictor_length % 4:
      raise ValueError(f"predictor_length (T_M)={predictor_length} is not allowed: it must be "
                       "divisible by 4.")
    if k_oversample != 1.0:
      raise ValueError(f"k_oversample={k_oversample!r} is not allowed: only 1.0 is supported "
                       "(the official default; other values also thin the key map).")
    if attention_impl not in ATTENTION_IMPLS:
      raise ValueError(f"attention_impl={attention_impl!r} is not allowed: use one of "
                       f"{ATTENTION_IMPLS}.")
    self.num_heads = num_heads
    self.head_dim = head_dim
    self.k = k
    self.predictor_length = predictor_length
    self.max_position_embeddings = max_position_embeddings
    self.k_oversample = float(k_oversample)
    self.partial_attention_scaler = partial_attention_scaler
    self.attention_impl = attention_impl
    self.dtype = dtype
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    # v_eye_learned_causal [1, 1, max_pos, D], randn init: the positional value code whose
    # Performer average tells the estimator where each row's attention mass lies.
    self.position_code = nnx.Param(
        nnx.with_partitioning(nnx.initializers.normal(1.0), (None, None))(
            rngs.params(), (max_position_embeddings, head_dim), param_dtype))
    self.performer = CausalPerformer(head_dim, nb_features_for(head_dim, performer_nb_factor),
                                     chunk_size=performer_chunk_size, rngs=rngs)
    self.encoder = AttentionEncoder(head_dim, **kw)
    self.decoder = CompressedScoreDecoder(num_heads, head_dim, predictor_length, **kw)
    self.gates = make_linear(2 * head_dim, 2, **kw)  # attention_predictor_dec_scaler

  def _check_inputs(self, q, k, v):
    for name, x in (("q", q), ("k", k), ("v", v)):
      if x.ndim != 4:
        raise ValueError(f"{name}.shape={x.shape} is not allowed: expected [N, H, T, D].")
    if not q.shape == k.shape == v.shape:
      raise ValueError(f"q/k/v shapes {q.shape}/{k.shape}/{v.shape} are not allowed: they must be "
                       "equal (self-attention without a KV cache).")
    _, h, t, d = q.shape
    if h != self.num_heads or d != self.head_dim:
      raise ValueError(f"q.shape={q.shape} is not allowed: the layer has num_heads={self.num_heads}"
                       f" and head_dim={self.head_dim}.")
    if t > self.max_position_embeddings:
      raise ValueError(f"sequence length T={t} is not allowed: it must be <= "
                       f"max_position_embeddings={self.max_position_embeddings}.")

  def __call__(self, q: jax.Array, k: jax.Array, v: jax.Array, *,
               return_intermediates: bool = False) -> SEAOutput:
    """Runs the layer (deterministic; the official train-time key jitter is not modelled).

    Args:
      q: [N, H, T, D] queries, already multiplied by D^-1/2 (OPT's q_proj scaling).
      k: [N, H, T, D] keys.
      v: [N, H, T, D] values.
      return_intermediates: also return the official debug buffers, under the golden names:
        performer_context_layer, t_attention_predictor, estimated_attention_score_dec_row,
        per_item_top_k [N,T,1], estimated_scales, gate_attn_scale, gate_mix,
        partial_context_layer_1, average_context_layer; on the 'official' path also mask_keep
        [N,H,T,T] and partial_attention_probs [N,H,T,T]; on the kernel paths
        partial_attention_probs_sparse [N,H,T,K] (recomputed by a jnp gather: the kernel
        returns no probabilities).

    Returns:
      SEAOutput.
    """
    self._check_inputs(q, k, v)
    n, h, t, d = q.shape
    dtype = self.dtype if self.dtype is not None else q.dtype
    q, k, v = (x.astype(dtype) for x in (q, k, v))

    # 1. Performer over [positional code | v] (always fp32, as attention.py PRECISION_PERF).
    pos = jnp.broadcast_to(self.position_code[...][:t].astype(jnp.float32), (n, h, t, d))
    performer_context = self.performer(q, k, jnp.concatenate([pos, v.astype(jnp.float32)], -1))

    # 2. Estimator: t, then the compressed logits S and P_hat.
    t_pred = self.encoder(jnp.concatenate([performer_context.astype(dtype), v], axis=-1))
    score, dec_rows = self.decoder(t_pred)
    p_hat = jax.nn.softmax(score.astype(jnp.float32), axis=-1)

    # 3. Selection (shape-only tables are NumPy constants).
    tables = masks.selection_tables(t, self.predictor_length, h, self.k, self.k_oversample)
    keep_m = masks.grouped_topk_keep(jax.lax.stop_gradient(p_hat), tables)

    # 4. Sparse attention and the two gates.
    scales = self.gates(t_pred)
    gate_attn = jax.nn.sigmoid(scales[..., 0:1]) if self.partial_attention_scaler else None
    gate_mix = jax.nn.sigmoid(scales[..., 1:2])
    extra = {}
    key_indices = key_valid = None
    if self.attention_impl == OFFICIAL:
      keep = masks.expand_keep_to_keys(keep_m)
      # attention.py: softmax(qk^T + mask), masked entries zeroed, then * sigma(s0), then @ v.
      probs = sparse_attention.dense_masked_probs(q, k, keep)
      if gate_attn is not None:
        probs = probs * gate_attn.astype(probs.dtype)
      partial = jnp.einsum("bhqk,bhkd->bhqd", probs, v)
      extra = {"mask_keep": keep, "partial_attention_probs": probs}
    else:
      if dispatch.resolve_impl(self.attention_impl) == dispatch.XLA:
        # CPU: one list per query shared by its heads holds the kept keys with H times fewer
        # padded slots than per-head lists (the grouped budget lets one head take it all).
        partial = sparse_attention.grouped_list_attention(
            q, k, v, masks.grouped_key_lists(keep_m, tables))
      else:
        key_indices, key_valid = masks.row_sparse_key_indices(keep_m, tables)
        partial = kernels_row_sparse.row_sparse_attention(
            q, k, v, key_indices, key_valid=key_valid, scale=1.0, impl=self.attention_impl)
      if return_intermediates:
        if key_indices is None:
          key_indices, key_valid = masks.row_sparse_key_indices(keep_m, tables)
        _, sparse_probs = sparse_attention.gather_row_sparse_attention(
            q, k, v, key_indices, key_valid)
        extra = {"partial_attention_probs_sparse": sparse_probs}
      if gate_attn is not None:
        partial = partial * gate_attn.astype(partial.dtype)
        if "partial_attention_probs_sparse" in extra:
          extra["partial_attention_probs_sparse"] *= gate_attn.astype(partial.dtype)

    # 5. Mix with the cumulative average of v (attention.py causal `avg_pool` branch).
    # Accumulated in fp32 (the official code sums in v's dtype: in fp32 the same up to the
    # order of the additions, and a bf16 running sum over thousands of tokens would lose most
    # of its bits).
    average = (prefix_sums.prefix_sum(v.astype(jnp.float32), axis=-2)
               / jnp.arange(1, t + 1, dtype=jnp.float32)[:, None]).astype(dtype)
    mixed = partial * gate_mix.astype(dtype) + (1 - gate_mix.astype(dtype)) * average
    context = jnp.transpose(mixed, (0, 2, 1, 3)).reshape(n, t, h * d)

    intermediates = None
    if return_intermediates:
      intermediates = {
          "performer_context_layer": performer_context,
          "t_attention_predictor": t_pred,
          "estimated_attention_score_dec_row": dec_rows,
          "per_item_top_k": jnp.broadcast_to(jnp.asarray(tables.budget)[None, :, None], (n, t, 1)),
          "estimated_scales": scales,
          "gate_attn_scale": (gate_attn if gate_attn is not None
                              else jnp.ones_like(gate_mix)),
          "gate_mix": gate_mix,
          "partial_context_layer_1": partial,
          "average_context_layer": average,
          **extra,
      }
    return SEAOutput(context=context, estimated_attention_score=score,
                     estimated_attention_probs_m=p_hat, mask_compressed_keep=keep_m,
                     key_indices=key_indices, key_valid=key_valid, intermediates=intermediates)
