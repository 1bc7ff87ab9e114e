"""I-JEPA forward and loss (official src/train.py L295-319) and the SparseJEPA total loss."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from projects.sparse_jepa.sparsity_head import SparsityHead
from projects.sparse_jepa.tensors import Masks, apply_masks, repeat_interleave_batch, stack_masks


def target_layer_norm(h: jax.Array, eps: float = 1e-5) -> jax.Array:
  """F.layer_norm(h, (D,)) without affine, torch's default eps 1e-5 (train.py L298), in fp32."""
  h32 = h.astype(jnp.float32)
  mean = h32.mean(-1, keepdims=True)
  var = jnp.square(h32 - mean).mean(-1, keepdims=True)
  return ((h32 - mean) * jax.lax.rsqrt(var + eps)).astype(h.dtype)


def smooth_l1(pred: jax.Array, target: jax.Array, beta: float = 1.0) -> jax.Array:
  """F.smooth_l1_loss(pred, target) with beta 1 and mean reduction, accumulated in fp32."""
  if pred.shape != target.shape:
    raise ValueError(f"pred shape {pred.shape} != target shape {target.shape}.")
  if beta <= 0:
    raise ValueError(f"beta={beta}; allowed: > 0.")
  d = jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32))
  return jnp.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta).mean()


def ijepa_forward(encoder: nnx.Module, predictor: nnx.Module, target_encoder: nnx.Module,
                  imgs: jax.Array, masks_enc: Masks,
                  masks_pred: Masks) -> dict[str, jax.Array]:
  """One I-JEPA step's forward (official src/train.py L295-319, use_bfloat16=False).

  Returns a dict: `h` targets and `z` predictions, both (npred*nenc*B, Kp, D) with rows ordered
  target block, context block, batch; `loss` = smooth-L1 (beta 1, mean); `target_encoder_out`
  (B, N, D) before the LN (stop-gradient); `context_encoder_out` (nenc*B, Kc, D).
  """
  masks_enc, masks_pred = stack_masks(masks_enc), stack_masks(masks_pred)
  # The target branch runs under torch.no_grad() (train.py L296).
  target_out = jax.lax.stop_gradient(target_encoder(imgs))
  batch = target_out.shape[0]
  h = target_layer_norm(target_out)
  h = apply_masks(h, masks_pred)
  h = repeat_interleave_batch(h, batch, repeat=masks_enc.shape[0])
  context = encoder(imgs, masks_enc)
  z = predictor(context, masks_enc, masks_pred)
  return {"h": h, "z": z, "loss": smooth_l1(z, h), "target_encoder_out": target_out,
          "context_encoder_out": context}


def sparse_jepa_loss(encoder: nnx.Module, predictor: nnx.Module, target_encoder: nnx.Module,
                     head: SparsityHead, imgs: jax.Array, masks_enc: Masks, masks_pred: Masks,
                     *, train: bool = False, rngs: nnx.Rngs | None = None
                     ) -> tuple[jax.Array, dict[str, Any]]:
  """I-JEPA loss + the SparseJEPA penalty; returns (total, metrics).

  The head reads the embeddings chosen by `head.config.attach` / `pooling` (SparsityConfig).
  train=True draws the latent sample from `rngs` (train=False: the posterior mean). Metrics are
  scalars: ijepa_loss, the head's losses, and its latent-space metrics.
  """
  out = ijepa_forward(encoder, predictor, target_encoder, imgs, masks_enc, masks_pred)
  cfg = head.config
  emb = out["context_encoder_out"] if cfg.attach == "context" else encoder(imgs)
  if cfg.pooling == "mean":
    emb = emb.mean(axis=1)
  head_out = head(emb, train=train, rngs=rngs)
  total = out["loss"] + head_out["losses"]["penalty"]
  metrics = {"ijepa_loss": out["loss"], "loss": total,
             **{f"sparsity/{k}": v for k, v in head_out["losses"].items()},
             **{f"sparsity/{k}": v for k, v in head.metrics(head_out).items()}}
  return total, metrics
