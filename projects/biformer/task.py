"""The BiFormer Task: image classification with BiFormer or the plain ViT baseline.

Everything but the model is the shared image classification task (Mixup/CutMix, label
smoothing, masked evaluation loss, evaluators, the config check before anything is built).
`config.model.name='biformer'` builds projects.biformer.BiFormer from
`config.from_config(config.model)`: a paper preset plus `config.model.arch` overrides, with
`config.model.attention_impl` choosing the routed attention. BiFormer's BatchNorm takes
`train`; drop path draws from the step's 'dropout' rng.
"""
from __future__ import annotations

from common.tasks import image
from projects.biformer import config as config_lib
from projects.biformer.model import BiFormer


class BiFormerTask(image.ImageClassificationTask):
  PAPER_MODEL = "biformer"
  MODEL = BiFormer
  from_config = staticmethod(config_lib.from_config)


get_task = BiFormerTask  # get_task(config) -> the Task, the trainer's entry point
