"""The SViT Task: image classification with SViT/STViT or the plain ViT baseline.

Everything but the model is common.train.image_task (Mixup/CutMix, label smoothing, masked
evaluation loss, evaluators). `config.model.name='svit'` builds projects.svit.STViT from a paper
preset plus `config.model.arch` overrides. SViT's BatchNorm takes `train` explicitly; its running
statistics are non-parameter model state that the trainer carries in `state['model_state']`.
Drop path / dropout draw from the step's 'dropout' rng.
"""
from __future__ import annotations

import ml_collections
from flax import nnx

from common.train import image_task
from common.train import task as task_lib
from projects.svit import presets
from projects.svit.config import STViTConfig
from projects.svit.model import STViT


def stvit_config(config: ml_collections.ConfigDict) -> STViTConfig:
  """The architecture: preset (or STViTConfig defaults when '') + arch overrides + data sizes."""
  return image_task.paper_config(config, STViTConfig, presets.get_preset)


class SViTTask(image_task.ImageClassificationTask):
  PAPER_MODEL = "svit"

  def build_paper_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return STViT(stvit_config(self.config), **self.model_dtypes(), rngs=rngs)

  def paper_forward(self, model, images, *, train, rngs):
    return model(images, train=train, rngs=rngs)


def get_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  return SViTTask(config)
