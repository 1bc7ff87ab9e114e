"""Image classification with a paper's model or a plain ViT baseline: the vision projects' Task.

A project subclasses `ImageClassificationTask`, names its model (`PAPER_MODEL`) and supplies
`build_paper_model(rngs)` and `paper_forward(model, images, *, train, rngs)`; everything else
(config checks, the baseline ViT, Mixup/CutMix + label smoothing, masked evaluation loss,
accuracy, the evaluator registry) is shared, so SViT and BiFormer are trained and scored the
same way.

`config.model.name` picks the model: `PAPER_MODEL` or 'vit' (common.layers.vit.VisionTransformer
from `config.model.vit`). Batches are NHWC {'image', 'label'[, 'mask']} from common.data.
Training loss: Mixup/CutMix and label smoothing (common.data.mixup, timm semantics, on device
with the step rng) and soft-target cross-entropy; `config.model.mixup.prob = 0` leaves label
smoothing only. Evaluation loss: plain cross-entropy on the hard labels, weighted by 'mask'.
`config.model.train_mode=False` trains with the model in eval mode (the official SViT 384
fine-tune does).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from common.data import augment_imagenet  # noqa: F401  (registers 'randaugment', 'random_erasing')
from common.data import mixup as mixup_lib
from common.eval import image_classification as evaluators_lib
from common.layers import dtypes, vit
from common.train import task as task_lib


def num_classes(config: ml_collections.ConfigDict) -> int:
  if config.data.get("num_classes", 0):
    return int(config.data.num_classes)
  from common.data import pipeline  # reads the dataset's metadata: only when not configured
  return pipeline.num_classes(config.data)


def paper_config(config: ml_collections.ConfigDict, config_cls: type,
                 preset_fn: Callable[..., Any], **extra: Any) -> Any:
  """A model-config dataclass: preset (or `config_cls` defaults when '') + arch overrides.

  Data sizes (classes, channels) and the drop-path rate come from the run config, so a preset
  trained on another dataset needs no hand edits; `extra` adds project-specific overrides.
  """
  m = config.model
  arch = {k: v for k, v in m.get("arch", ml_collections.ConfigDict()).items() if v is not None}
  arch = {k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()}
  overrides = dict(arch, num_classes=num_classes(config),
                   in_chans=int(config.data.get("channels", 0) or 3),
                   drop_path_rate=float(m.get("drop_path_rate", 0.0)), **extra)
  if m.preset:
    return preset_fn(m.preset, **overrides)
  fields = {f.name for f in dataclasses.fields(config_cls)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f"config.model.arch has unknown field(s) {unknown}; allowed: "
                     f"{sorted(fields)}.")
  return config_cls(**overrides)


def eval_only(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy without drop path and EMA, for a checkpoint of converted weights (it has neither)."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.model.drop_path_rate = 0.0
  config.optimizer.ema_decay = 0.0
  return config


def converted_case_config(demo_config: ml_collections.ConfigDict, arch: Any, input_size: int, *,
                          skip: tuple[str, ...] = ()) -> ml_collections.ConfigDict:
  """`demo_config`, eval-only, building the model-config dataclass `arch` on its demo dataset.

  The data takes its channels, classes and size from `arch` and `input_size`, so converted
  official weights of any shape restore without ImageNet. Every field of `arch` becomes a
  `config.model.arch` override except the data-derived ones (and `skip`).
  """
  config = eval_only(demo_config)
  config.data.channels = arch.in_chans
  config.data.num_classes = arch.num_classes
  config.data.image_size = int(input_size)
  config.data.mean = config.data.std = (0.5,) * arch.in_chans
  skip = ("num_classes", "in_chans", "drop_path_rate") + tuple(skip)
  config.model.arch = ml_collections.ConfigDict(
      {f.name: getattr(arch, f.name) for f in dataclasses.fields(arch)
       if f.name not in skip and getattr(arch, f.name) is not None})
  config.model.preset = ""
  return config


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


def init_rngs(rngs: nnx.Rngs) -> nnx.Rngs:
  """Parameter-init rngs on an 'rbg' key derived from the trainer's seed.

  XLA compiles threefry's hash rounds once per parameter, slowly on CPU (the tiny demo SViT's
  jitted init: 22 s of CPU with threefry, 8 s with rbg). Only the drawn values differ; the
  distributions are the same, and the key still depends on the seed alone. The (threefry)
  'dropout' stream is named too, so a loss can reseed exactly the drop-path streams.
  """
  seed = jax.random.randint(rngs.params(), (), 0, jnp.iinfo(jnp.int32).max)
  return nnx.Rngs(params=jax.random.key(seed, impl="rbg"), dropout=rngs.params())


def _weights(batch) -> jax.Array:
  mask = batch.get("mask")
  return (jnp.ones(batch["label"].shape[0], jnp.float32) if mask is None
          else mask.astype(jnp.float32))


class ImageClassificationTask(task_lib.Task):
  """A paper model (or the ViT baseline) on {'image' [B,H,W,C], 'label' [B], optional 'mask'}."""

  PAPER_MODEL: str = ""  # the value of config.model.name that selects the project's model

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    allowed = (self.PAPER_MODEL, "vit")
    name = config.model.get("name")
    if name not in allowed:
      raise ValueError(f"config.model.name={name!r} is not supported; allowed: {allowed}.")
    self.mixup = mixup_lib.MixupConfig(**config.model.mixup.to_dict())
    self.num_classes = num_classes(config)
    self._evaluators = None

  # --- what a project supplies ---------------------------------------------------------------
  def build_paper_model(self, rngs: nnx.Rngs) -> nnx.Module:
    raise NotImplementedError

  def paper_forward(self, model: nnx.Module, images: jax.Array, *, train: bool,
                    rngs: nnx.Rngs | None) -> jax.Array:
    raise NotImplementedError

  # --- shared --------------------------------------------------------------------------------
  def model_dtypes(self) -> dict[str, Any]:
    m = self.config.model
    return dict(dtype=dtypes.resolve_dtype(m.dtype), param_dtype=dtypes.resolve_dtype(m.param_dtype))

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    if self.config.model.name == "vit":
      return build_baseline_vit(self.config, rngs)
    return self.build_paper_model(init_rngs(rngs))

  def _forward(self, model, images, *, train, rngs):
    if self.config.model.name == "vit":
      logits = model(images, deterministic=not train, rngs=rngs)
    else:
      logits = self.paper_forward(model, images, train=train, rngs=rngs)
    nnx.pop(model, nnx.Intermediate)  # the ViT's MLP statistics are not used here
    return logits.astype(jnp.float32)

  def loss(self, model, batch, *, train, rngs):
    images, labels = batch["image"], batch["label"]
    weights = _weights(batch)
    if train:
      if rngs is None:
        raise ValueError(f"the {self.PAPER_MODEL} training loss needs rngs (mixup, drop path); "
                         "got None.")
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
