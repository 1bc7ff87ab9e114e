"""The BiFormer Task: image classification with BiFormer or a plain ViT baseline.

`config.model.name` picks the model: 'biformer' (projects.biformer.BiFormer from a paper preset
plus `config.model.arch` overrides) or 'vit' (common.layers.vit.VisionTransformer, the demo's
baseline, from `config.model.vit`). Batches are NHWC {'image', 'label'[, 'mask']} from
common.data.

Training loss: Mixup/CutMix and label smoothing (common.data.mixup, timm semantics, on device
with the step rng) and soft-target cross-entropy; evaluation loss: plain cross-entropy on the
hard labels, weighted by 'mask'. BiFormer switches BatchNorm and drop path with
`model.train()` / `model.eval()` (the trainer calls them; the loss does too, so it is right when
called directly). Its drop-path layers own 'dropout' rng streams; the training loss reseeds
them from the step's rng (a different key per layer), so the masks depend on (seed, step) only,
as everything random in a step does.
"""
from __future__ import annotations

import dataclasses
import zlib

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.data import augment_imagenet  # noqa: F401  (registers 'randaugment', 'random_erasing')
from common.data import mixup as mixup_lib
from common.layers import dtypes, vit
from common.train import task as task_lib
from common.eval import image_classification as evaluators_lib
from projects.biformer import presets
from projects.biformer.model import BiFormer
from projects.biformer.model_config import BiFormerConfig

MODELS = ("biformer", "vit")


def num_classes(config: ml_collections.ConfigDict) -> int:
  if config.data.get("num_classes", 0):
    return int(config.data.num_classes)
  from common.data import pipeline  # reads the dataset's metadata: only when not configured
  return pipeline.num_classes(config.data)


def biformer_config(config: ml_collections.ConfigDict) -> BiFormerConfig:
  """The architecture: preset (or BiFormerConfig defaults when '') + arch overrides."""
  m = config.model
  arch = {k: v for k, v in m.get("arch", ml_collections.ConfigDict()).items() if v is not None}
  arch = {k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()}
  overrides = dict(arch, num_classes=num_classes(config),
                   in_chans=int(config.data.get("channels", 0) or 3),
                   drop_path_rate=float(m.get("drop_path_rate", 0.0)))
  if m.get("attention_impl"):
    overrides["attention_impl"] = m.attention_impl
  if m.preset:
    return presets.get_config(m.preset, **overrides)
  fields = {f.name for f in dataclasses.fields(BiFormerConfig)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f"config.model.arch has unknown field(s) {unknown}; allowed: "
                     f"{sorted(fields)}.")
  return BiFormerConfig(**overrides)


def build_baseline_vit(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> vit.VisionTransformer:
  """The plain ViT of the demo comparison (no stochastic depth: common's ViT has none)."""
  v, d = config.model.vit, config.data
  if d.image_size % v.patch_size:
    raise ValueError(f"config.model.vit.patch_size={v.patch_size} must divide "
                     f"config.data.image_size={d.image_size}.")
  return vit.VisionTransformer(
      image_size=d.image_size, patch_size=v.patch_size, channels=d.channels,
      num_classes=num_classes(config), width=v.width, depth=v.depth, num_heads=v.num_heads,
      mlp_dim=v.mlp_dim, mlp_activation="gelu", pool=v.pool, posemb=v.posemb,
      dropout_rate=v.get("dropout_rate", 0.0), head_zero_init=True,
      dtype=dtypes.resolve_dtype(config.model.dtype),
      param_dtype=dtypes.resolve_dtype(config.model.param_dtype), rngs=rngs)


def _per_layer_key(path: tuple, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """nnx.reseed policy: one step key, a distinct stream per drop-path layer (by its path).

  crc32, not hash(): Python's str hash changes between processes, and a resumed run must draw
  the same masks.
  """
  del shape
  return jax.random.fold_in(key, zlib.crc32("/".join(map(str, path)).encode()) & 0x7FFFFFFF)


def init_rngs(rngs: nnx.Rngs) -> nnx.Rngs:
  """Parameter-init rngs on an 'rbg' key derived from the trainer's seed.

  XLA compiles threefry's hash rounds once per parameter, slowly on CPU (the tiny demo SViT's
  jitted init: 22 s of CPU with threefry, 8 s with rbg). Only the drawn values differ; the
  distributions are the same, and the key still depends on the seed alone.
  """
  seed = jax.random.randint(rngs.params(), (), 0, jnp.iinfo(jnp.int32).max)
  return nnx.Rngs(params=jax.random.key(seed, impl="rbg"), dropout=rngs.params())


def _weights(batch) -> jax.Array:
  mask = batch.get("mask")
  return (jnp.ones(batch["label"].shape[0], jnp.float32) if mask is None
          else mask.astype(jnp.float32))


class BiFormerTask(task_lib.Task):
  """BiFormer (or the ViT baseline) on {'image' [B,H,W,C], 'label' [B], optional 'mask' [B]}."""

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    name = config.model.get("name")
    if name not in MODELS:
      raise ValueError(f"config.model.name={name!r} is not supported; allowed: {MODELS}.")
    self.mixup = mixup_lib.MixupConfig(**config.model.mixup.to_dict())
    self.num_classes = num_classes(config)
    self._evaluators = None

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    if self.config.model.name == "vit":
      return build_baseline_vit(self.config, rngs)
    m = self.config.model
    # init_rngs also names a (threefry) 'dropout' stream, so that the loss can reseed exactly
    # the drop-path streams.
    return BiFormer(biformer_config(self.config), dtype=dtypes.resolve_dtype(m.dtype),
                    param_dtype=dtypes.resolve_dtype(m.param_dtype), rngs=init_rngs(rngs))

  def _forward(self, model, images, *, train, rngs):
    if self.config.model.name == "vit":
      logits = model(images, deterministic=not train, rngs=rngs)
      nnx.pop(model, nnx.Intermediate)  # the ViT's MLP statistics are not used here
    else:
      if train:
        model.train()
        if self.config.model.get("drop_path_rate", 0.0) > 0:
          nnx.reseed(model, dropout=rngs.dropout(), policy=_per_layer_key)
      else:
        model.eval()
      logits = model(images)
    return logits.astype(jnp.float32)

  def loss(self, model, batch, *, train, rngs):
    images, labels = batch["image"], batch["label"]
    weights = _weights(batch)
    if train:
      if rngs is None:
        raise ValueError("the BiFormer training loss needs rngs (mixup, drop path); got None.")
      images, targets = mixup_lib.mix_batch(rngs.mixup(), images, labels,
                                            num_classes=self.num_classes, config=self.mixup)
      model_train = bool(self.config.model.get("train_mode", True))
      logits = self._forward(model, images, train=model_train, rngs=rngs)
      per_example = mixup_lib.soft_cross_entropy(logits, targets)
    else:
      logits = self._forward(model, images, train=False, rngs=None)
      per_example = mixup_lib.soft_cross_entropy(
          logits, jax.nn.one_hot(labels, self.num_classes, dtype=jnp.float32))
    total = jnp.maximum(jnp.sum(weights), 1.0)
    loss = jnp.sum(per_example * weights) / total
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    return loss, {"accuracy": jnp.sum(correct * weights) / total}

  def evaluators(self) -> dict[str, task_lib.Evaluator]:
    # Built once: new instances would recompile their jitted steps at every evaluation.
    if self._evaluators is None:
      self._evaluators = evaluators_lib.build_evaluators(self.config)
    return self._evaluators


def get_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  return BiFormerTask(config)
