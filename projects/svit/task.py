"""The SViT Task: image classification with SViT/STViT or the plain ViT baseline.

Everything but the model is the shared image classification task (Mixup/CutMix, label
smoothing, masked evaluation loss, evaluators, the config check before anything is built).
`config.model.name='svit'` builds projects.svit.STViT from `config.from_config(config.model)`:
a paper preset plus `config.model.arch` overrides. SViT's BatchNorm takes `train`; its running
statistics are non-parameter model state that the trainer carries in `state['model_state']`.
Drop path / dropout draw from the step's 'dropout' rng.
"""
from __future__ import annotations

from common.tasks import image
from projects.svit import config as config_lib
from projects.svit.model import STViT


class SViTTask(image.ImageClassificationTask):
  PAPER_MODEL = "svit"
  MODEL = STViT
  from_config = staticmethod(config_lib.from_config)


get_task = SViTTask  # get_task(config) -> the Task, the trainer's entry point
