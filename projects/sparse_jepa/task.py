"""The I-JEPA / SparseJEPA Task: `get_task(config)`.

Training step (official src/train.py L285-336):
  1. batches carry 'image' and the multi-block masks 'masks_enc' (B, nenc, Kc) and 'masks_pred'
     (B, npred, Kp) (masked_data.MaskedBatches, reproducible from (seed, step));
  2. loss = smooth-L1 between the predictor's outputs and the LayerNormed target-encoder features
     at the target blocks (losses.ijepa_forward); with `config.model.sparse` plus the SparsityHead
     penalty (losses.sparse_jepa_loss), and its latent-space metrics;
  3. AdamW on encoder + predictor (+ head): the trainer;
  4. `project_params` (SparseJEPA, lasso_mode 'proximal'): the group lasso's proximal step on
     the head's decoder blocks (oi-VAE's block soft-threshold at lr * lasso_weight);
  5. `after_update`: target <- m target + (1 - m) encoder, m linear from ema[0] to ema[1] over
     num_steps * ipe_scale steps (schedules.ema_momentum, official train.py L228-229, L333-336).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from common.data import config as data_config_lib
from common.train import task as task_lib
from projects.sparse_jepa import evaluators  # noqa: F401  (registers the probes' names)
from projects.sparse_jepa import config as config_lib
from projects.sparse_jepa import jepa, losses, masked_data, schedules, sparsity_head


def image_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
  """(H, W, C) of the model's input, from config.data (image_size and channels must be set)."""
  data = data_config_lib.resolve(config.data)
  for field in ("image_size", "channels"):
    if not data[field]:
      raise ValueError(f"config.data.{field}={data[field]!r}: sparse_jepa needs it set (the ViT "
                       "and the mask grid are built before any data is read); allowed: > 0.")
  return data.image_size, data.image_size, data.channels


def _weighted_smooth_l1(z: jax.Array, h: jax.Array, weights: jax.Array) -> jax.Array:
  """smooth_l1(z, h) averaged per example first, then over examples by `weights` (padding 0).

  Rows are ordered (target block, context block, example), so row r belongs to example r % B.
  """
  d = jnp.abs(z.astype(jnp.float32) - h.astype(jnp.float32))
  per_row = jnp.where(d < 1.0, 0.5 * d * d, d - 0.5).mean(axis=(1, 2))
  per_example = per_row.reshape(-1, weights.shape[0]).mean(axis=0)
  return jnp.sum(per_example * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def _weighted_penalty(head, emb: jax.Array, weights: jax.Array):
  """The head's penalty with padded examples left out (eval); emb (B, ..., D), z = mu."""
  cfg = head.config
  out = head(emb)
  w = weights.reshape((-1,) + (1,) * (emb.ndim - 2))
  w = jnp.broadcast_to(w, emb.shape[:-1])
  total = jnp.maximum(jnp.sum(w), 1.0)
  target = emb.astype(jnp.float32)
  recon = 0.5 * jnp.sum(jnp.mean(jnp.square(target - out["recon"]), -1) * w) / total
  kl = jnp.sum(jnp.sum(out["kl_per_unit"], -1) * w) / total / head.embed_dim
  lasso = out["losses"]["lasso"]
  penalty = cfg.penalty(recon, kl, lasso)   # as in training
  return penalty, {"recon": recon, "kl": kl, "lasso": lasso, "penalty": penalty}


class JEPATask(task_lib.Task):
  """I-JEPA; SparseJEPA when config.model.sparse. Batches: 'image' [B,H,W,C] + the masks."""

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    self.model_config = config_lib.from_config(config.model)
    self.image_shape = image_shape(config)
    self.collator = masked_data.collator_from_config(config, self.image_shape[0], seed=config.seed)
    self.eval_collator = masked_data.collator_from_config(config, self.image_shape[0],
                                                          seed=masked_data.EVAL_MASK_SEED)
    self.keep_bucket = masked_data.keep_bucket(config)
    self.momentum = schedules.ema_momentum(
        tuple(self.model_config.ema), config.train.num_steps * float(self.model_config.ipe_scale))

  def validate(self, config: ml_collections.ConfigDict) -> None:
    config_lib.from_config(config.model)  # unknown fields and bad values, before any compile

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return jepa.build_jepa(self.config, self.image_shape, rngs)

  def loss(self, model, batch, *, train, rngs):
    imgs = batch["image"]
    masks_enc = masked_data.model_masks(batch["masks_enc"])
    masks_pred = masked_data.model_masks(batch["masks_pred"])
    weights = batch.get("mask")
    shapes = {"masks/context_keep": float(masks_enc.shape[-1]),
              "masks/target_keep": float(masks_pred.shape[-1])}
    shapes = {k: jnp.asarray(v, jnp.float32) for k, v in shapes.items()}
    if weights is None:  # training: the official, unweighted means
      if model.head is None:
        out = losses.ijepa_forward(model.encoder, model.predictor, model.target_encoder, imgs,
                                   masks_enc, masks_pred)
        return out["loss"], {"ijepa_loss": out["loss"], **shapes}
      # train=True samples the latent from rngs; train=False uses z = mu.
      total, metrics = losses.sparse_jepa_loss(model.encoder, model.predictor,
                                               model.target_encoder, model.head, imgs,
                                               masks_enc, masks_pred, train=train, rngs=rngs)
      metrics.pop("loss")
      return total, {**metrics, **shapes}
    return self._weighted_loss(model, imgs, masks_enc, masks_pred, weights.astype(jnp.float32),
                               shapes)

  def _weighted_loss(self, model, imgs, masks_enc, masks_pred, weights, shapes):
    """Evaluation on padded batches: every mean is over real examples only."""
    out = losses.ijepa_forward(model.encoder, model.predictor, model.target_encoder, imgs,
                               masks_enc, masks_pred)
    ijepa = _weighted_smooth_l1(out["z"], out["h"], weights)
    metrics = {"ijepa_loss": ijepa, **shapes}
    if model.head is None:
      return ijepa, metrics
    cfg = model.head.config
    b = weights.shape[0]
    if cfg.attach == "context":
      # (nenc*B, Kc, D), rows context block-major -> (B, nenc, Kc, D), so padding drops by row.
      emb = out["context_encoder_out"]
      emb = emb.reshape(-1, b, *emb.shape[1:]).swapaxes(0, 1)
      # As in training, 'mean' pools each context block's tokens (one latent per block).
      emb = emb.mean(axis=2) if cfg.pooling == "mean" else emb.reshape(b, -1, emb.shape[-1])
    else:
      emb = model.encoder(imgs)
      emb = emb.mean(axis=1) if cfg.pooling == "mean" else emb
    penalty, parts = _weighted_penalty(model.head, emb, weights)
    metrics.update({f"sparsity/{k}": v for k, v in parts.items()})
    return ijepa + penalty, metrics

  def project_params(self, params, step, learning_rate):
    """SparseJEPA with lasso_mode 'proximal': the group lasso's proximal step on the head's
    decoder blocks, threshold learning_rate * lasso_weight (sparsity_head.prox_group_lasso)."""
    cfg = self.model_config.sparsity
    if not self.model_config.sparse or cfg.lasso_mode != "proximal":
      return params
    head = dict(params["head"])
    head["decoder"] = sparsity_head.prox_group_lasso(head["decoder"], cfg.latent_group_size,
                                                     learning_rate * cfg.lasso_weight)
    return dict(params, head=head)

  def after_update(self, params, model_state, step):
    state = dict(model_state)
    state[jepa.TARGET] = jepa.ema_target(model_state[jepa.TARGET], params["encoder"],
                                         self.momentum(step))
    return state

  def train_data(self, *, seed, process_index, process_count, batch_size):
    batches = super().train_data(seed=seed, process_index=process_index,
                                 process_count=process_count, batch_size=batch_size)
    collator = self.collator
    if seed != collator.seed:  # masks follow the seed the caller trains with
      collator = masked_data.collator_from_config(self.config, self.image_shape[0], seed=seed)
    return masked_data.MaskedBatches(batches, collator, process_index=process_index,
                                     process_count=process_count, keep_bucket=self.keep_bucket)

  def eval_data(self, split, *, process_index, process_count, batch_size, with_masks=True):
    """As Task.eval_data, plus masks (fixed eval stream) unless with_masks=False (probes)."""
    batches = super().eval_data(split, process_index=process_index, process_count=process_count,
                                batch_size=batch_size)
    if not with_masks:
      return batches
    return masked_data.MaskedBatches(batches, self.eval_collator, process_index=process_index,
                                     process_count=process_count, keep_bucket=self.keep_bucket)

def get_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  return JEPATask(config)
