"""The BiFormer Task: image classification with BiFormer or the plain ViT baseline.

Everything but the model is common.train.image_task (Mixup/CutMix, label smoothing, masked
evaluation loss, evaluators). `config.model.name='biformer'` builds projects.biformer.BiFormer
from a paper preset plus `config.model.arch` overrides. BiFormer switches BatchNorm and drop path
with `model.train()` / `model.eval()` (the trainer calls them; the forward here does too, so the
loss is right when called directly). Its drop-path layers own 'dropout' rng streams; the training
forward reseeds them from the step's rng (a different key per layer), so the masks depend on
(seed, step) only, as everything random in a step does.
"""
from __future__ import annotations

import zlib

import jax
import ml_collections
from flax import nnx

from common.train import image_task
from common.train import task as task_lib
from projects.biformer import presets
from projects.biformer.model import BiFormer
from projects.biformer.model_config import BiFormerConfig


def biformer_config(config: ml_collections.ConfigDict) -> BiFormerConfig:
  """The architecture: preset (or BiFormerConfig defaults when '') + arch overrides."""
  extra = {}
  if config.model.get("attention_impl"):
    extra["attention_impl"] = config.model.attention_impl
  return image_task.paper_config(config, BiFormerConfig, presets.get_config, **extra)


def _per_layer_key(path: tuple, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """nnx.reseed policy: one step key, a distinct stream per drop-path layer (by its path).

  crc32, not hash(): Python's str hash changes between processes, and a resumed run must draw
  the same masks.
  """
  del shape
  return jax.random.fold_in(key, zlib.crc32("/".join(map(str, path)).encode()) & 0x7FFFFFFF)


class BiFormerTask(image_task.ImageClassificationTask):
  PAPER_MODEL = "biformer"

  def build_paper_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return BiFormer(biformer_config(self.config), **self.model_dtypes(), rngs=rngs)

  def paper_forward(self, model, images, *, train, rngs):
    if train:
      model.train()
      if self.config.model.get("drop_path_rate", 0.0) > 0:
        nnx.reseed(model, dropout=rngs.dropout(), policy=_per_layer_key)
    else:
      model.eval()
    return model(images)


def get_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  return BiFormerTask(config)
