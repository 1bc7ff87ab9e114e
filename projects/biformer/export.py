"""Converted official weights -> a trainer checkpoint that `main.py --mode=eval` restores.

  write_checkpoint(model, config, workdir)   # model: a BiFormer holding converted weights

The checkpoint is an ordinary one of common.train (step 0, state layout of
common/train/state.py: {step, params, model_state, opt_state, health}, plus the config), so
`python projects/biformer/main.py --config <the same config> --workdir DIR --mode=eval` and
`python -m common.eval --workdir DIR` evaluate it. The config is made eval-only: no drop path
and no EMA (there is no training history; the official 'model_ema' weights can be converted
as a second checkpoint instead).

Configs: `imagenet_config(preset)` for released ImageNet weights (evaluation needs the prepared
'tfds:imagenet2012'); `case_config(kwargs, model, input_size)` for a golden case or any
official kwargs, with the demo dataset's config (channels and classes from the kwargs) so that it
restores without ImageNet.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import ml_collections

from common.train import config_io, image_task
from common.train.image_task import eval_only
from common.train.export import write_checkpoint  # noqa: F401  (re-exported for convert.py)

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def imagenet_config(preset: str) -> ml_collections.ConfigDict:
  return eval_only(config_io.load_config(f"{CONFIGS}/imagenet.py:{preset}"))


def case_config(kwargs: Mapping[str, Any], model: str, input_size: int
                ) -> ml_collections.ConfigDict:
  """A config whose model is the official `<model>(**kwargs)`; restores without ImageNet."""
  from third_party.biformer import official_kwargs  # the kwargs mapping and its checks
  arch = official_kwargs.config_from_kwargs(kwargs, model, drop_path_rate=0.0)
  return image_task.converted_case_config(
      config_io.load_config(f"{CONFIGS}/mnist_demo.py:biformer"), arch, input_size,
      skip=("attention_impl",))
