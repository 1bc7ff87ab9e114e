"""Image classification with a paper's model or a plain ViT baseline: the vision projects' Task.

A project subclasses `ImageClassificationTask` and names its model (`PAPER_MODEL`, the value of
`config.model.name`), the model class (`MODEL`, built as `MODEL(model_config, rngs=...)` and
called as `model(images, train=..., rngs=...)`) and its `config.from_config`; everything else
(config checks, the baseline ViT, Mixup/CutMix + label smoothing, masked evaluation loss,
accuracy) is shared, so SViT and BiFormer are trained and scored the same way. Their
`config.eval.evaluators` are 'classification' and 'throughput' (common/eval/registry.py); the
family's config.model fields and helpers are in common/tasks/image_configs.py.

`config.model.name` picks the model: `PAPER_MODEL` or 'vit' (common.layers.vit.VisionTransformer
from `config.model.vit`). Batches are NHWC {'image', 'label'[, 'mask']} from common.data.
Training loss: Mixup/CutMix and label smoothing (common.data.mixup, timm semantics, on device
with the step rng) and soft-target cross-entropy; `config.model.mixup.prob = 0` leaves label
smoothing only. Evaluation loss: plain cross-entropy on the hard labels, weighted by 'mask'.
`config.model.train_mode=False` trains with the model in eval mode (the official SViT 384
fine-tune does).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from common.data import augment_imagenet  # noqa: F401  (registers 'randaugment', 'random_erasing')
from common.data import mixup as mixup_lib
from common.layers import dtypes, keys, vit
from common.tasks.image_configs import data_fields, num_classes
from common.train import task as task_lib


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
      remat_policy=config.model.get("remat_policy", "none"),
      dtype=dtypes.resolve_dtype(config.model.dtype),
      param_dtype=dtypes.resolve_dtype(config.model.param_dtype), rngs=rngs)


def _weights(batch) -> jax.Array:
  mask = batch.get("mask")
  return (jnp.ones(batch["label"].shape[0], jnp.float32) if mask is None
          else mask.astype(jnp.float32))


class ImageClassificationTask(task_lib.Task):
  """A paper model (or the ViT baseline) on {'image' [B,H,W,C], 'label' [B], optional 'mask'}."""

  PAPER_MODEL: str = ""  # the value of config.model.name that selects the project's model
  MODEL: type = None  # the paper model class, built as MODEL(model_config, rngs=...)
  # The project's `config.from_config(config.model, **data_fields)` -> its model config.
  from_config: Any = None

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    allowed = (self.PAPER_MODEL, "vit")
    name = config.model.get("name")
    if name not in allowed:
      raise ValueError(f"config.model.name={name!r} is not supported; allowed: {allowed}.")
    self.validate(config)  # names a misspelled field (e.g. in mixup) before it is used
    self.mixup = mixup_lib.MixupConfig(**config.model.mixup.to_dict())
    self.num_classes = num_classes(config)

  def validate(self, config: ml_collections.ConfigDict) -> None:
    """config.model against the project's model config, before anything is built."""
    type(self).from_config(config.model)

  def model_config(self) -> Any:
    """The paper model's config: config.model with the data's classes and channels."""
    return type(self).from_config(self.config.model, **data_fields(self.config))

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    if self.config.model.name == "vit":
      return build_baseline_vit(self.config, rngs)
    # Parameter keys on 'rbg': common.layers.keys explains the compile-time saving.
    return self.MODEL(self.model_config(), rngs=keys.init_keys(rngs, impl="rbg"))

  def _forward(self, model, images, *, train, rngs):
    logits = model(images, train=train, rngs=rngs)   # paper model and ViT baseline alike
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
