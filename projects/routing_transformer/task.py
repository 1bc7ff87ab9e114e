"""The Routing Transformer LM task: next-token cross-entropy plus the summed clustering loss.

Batches (common.data 'lm' format): 'inputs', 'targets' int32 [B, n], 'weights' float32 [B, n];
evaluation batches also carry 'mask' [B] (0 for padding examples). As TF, the cross-entropy is
averaged over the real target tokens and `extra_loss` (the per-layer 2*beta*e_loss, summed over
layers) is added, in training and evaluation alike.

Metrics: 'cross_entropy' (nats per token), 'bits_per_token' (= bits per byte with the byte
tokenizer, also reported as 'bits_per_byte'), 'accuracy', 'clustering_loss'. Perplexity is
exp('cross_entropy') of the evaluated mean (not averaged per batch).

Pixel LM (config.data.kind 'image', config.model.positions 'learned_nd'; the imagenet64 / cifar10
presets): the common image pipeline's batches ('image' float32 [B, H, W, C] with mean 0, std 1,
i.e. uint8 / 255) are turned back into exact intensities, flattened in raster order (row,
column, channel: TF's reshape of [B, H, W, C] to [B, H*W*C]) as the targets, and right-shifted
by one with a 0 in front as the inputs (TF `right_shift_blockwise_nd` with a 1-D query shape).
As TF `SparseImagetransformer.loss`, every pixel counts (no weights); 'bits_per_dim' =
cross-entropy / ln 2.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from common.tasks import lm
from common.train import task as task_lib
from projects.routing_transformer import config as config_lib
from projects.routing_transformer import model as model_lib


def pixels_to_tokens(image: jax.Array) -> jax.Array:
  """[B, H, W, C] floats uint8 / 255 (mean 0, std 1) -> int32 [B, H*W*C] intensities, raster order.

  x / 255 in float32 times 255 rounds back to x exactly for every x in [0, 255].
  """
  values = jnp.clip(jnp.rint(image.astype(jnp.float32) * 255.0), 0, 255).astype(jnp.int32)
  return values.reshape(values.shape[0], -1)


def image_lm_batch(batch) -> dict:
  """An image batch as an LM batch: targets = the raster pixels, inputs = them shifted right."""
  targets = pixels_to_tokens(batch["image"])
  inputs = jnp.pad(targets[:, :-1], ((0, 0), (1, 0)))
  out = {"inputs": inputs, "targets": targets,
         "weights": jnp.ones(targets.shape, jnp.float32)}
  if "mask" in batch:
    out["mask"] = batch["mask"]
  return out


def check_pixel_data(config: ml_collections.ConfigDict) -> None:
  """The image pipeline settings under which pixels come back as exact integers."""
  d, m = config.data, config.model
  if m.get("positions", "none") != "learned_nd":
    raise ValueError(f"config.data.kind='image' trains the pixel LM, which needs "
                     f"config.model.positions='learned_nd' (got {m.get('positions')!r}).")
  if any(float(v) != 0.0 for v in d.mean) or any(float(v) != 1.0 for v in d.std):
    raise ValueError(f"config.data.mean={tuple(d.mean)} / std={tuple(d.std)}: the pixel LM reads "
                     "exact intensities back from the pipeline's [0, 1] floats; set mean=(0.0,) "
                     "and std=(1.0,).")
  if "noise" in tuple(d.augment):
    raise ValueError(f"config.data.augment={tuple(d.augment)}: 'noise' makes pixels non-integer; "
                     "remove it for the pixel LM.")
  h, w, c = tuple(m.image_shape) if len(m.image_shape) == 3 else (0, 0, 0)
  if d.image_size and (h, w) != (d.image_size, d.image_size):
    raise ValueError(f"config.data.image_size={d.image_size} but config.model.image_shape="
                     f"{tuple(m.image_shape)}; make them agree.")
  if d.channels and d.channels != c:
    raise ValueError(f"config.data.channels={d.channels} but config.model.image_shape="
                     f"{tuple(m.image_shape)}; make them agree.")


class RoutingTransformerTask(task_lib.Task):
  """Decoder-only LM on config.data: text ('lm' format) or images (raster pixel LM)."""

  def validate(self, config: ml_collections.ConfigDict) -> None:
    cfg = config_lib.from_config(config.model)  # every config.model field, checked
    if config.data.kind == "image":  # before the length: image data carries no seq_len
      check_pixel_data(config)
    config_lib.check_sequence(cfg, config_lib.sequence_length(config))

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    self.validate(self.config)
    return model_lib.RoutingTransformerLM(config_lib.from_config(self.config.model), rngs=rngs)

  def loss(self, model, batch, *, train, rngs):
    pixels = self.config.data.kind == "image"
    if pixels:
      batch = image_lm_batch(batch)
      expected = math.prod(self.config.model.image_shape)
      if batch["targets"].shape[1] != expected:
        raise ValueError(f"images of {batch['targets'].shape[1]} values arrive but "
                         f"config.model.image_shape={tuple(self.config.model.image_shape)} "
                         f"expects {expected}; set config.data.image_size/channels to match.")
    weights = lm.token_weights(batch)
    logits, clustering = model(batch["inputs"], train=train, rngs=rngs if train else None)
    ce, accuracy = lm.cross_entropy(logits, batch["targets"], weights)
    bits = ce / math.log(2.0)
    metrics = {"cross_entropy": ce, "bits_per_token": bits, "accuracy": accuracy,
               "clustering_loss": clustering}
    if pixels:
      metrics["bits_per_dim"] = bits
    elif self.config.data.get("tokenizer", "") == "bytes":
      metrics["bits_per_byte"] = bits
    return ce + clustering, metrics

  def eval_forward(self, model, batch) -> jax.Array:
    """The logits [B, n, V] on an evaluation batch (the distance evaluators read them)."""
    return model(batch["inputs"])[0]

  def sample(self, model, prompt: str, *, num_tokens: int, temperature: float, seed: int) -> str:
    """`main.py --mode=sample`: incremental decoding with the q/k/v cache (decoding.sample)."""
    from projects.routing_transformer import decoding  # pylint: disable=g-import-not-at-top
    if self.config.data.kind == "image":
      raise ValueError("--mode=sample continues text; this is a pixel LM (use "
                       "projects.routing_transformer.decoding.sample on pixel ids directly).")
    run = nnx.jit(decoding.sample, static_argnames=("length", "temperature"))
    return lm.continue_prompt(
        self.config.data, prompt, num_tokens=num_tokens,
        max_len=config_lib.sequence_length(self.config),
        generate=lambda ids: run(model, ids, ids.shape[1] + num_tokens,
                                 key=jax.random.key(seed), temperature=float(temperature)))


def get_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  return RoutingTransformerTask(config)
