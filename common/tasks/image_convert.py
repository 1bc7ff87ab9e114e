"""`convert.py --to_checkpoint` of the vision projects (svit, biformer): converted official
weights -> step 0 of a trainer checkpoint that `main.py --mode=eval` restores.

The checkpoint is an ordinary one of common.train (common/train/export.py), so
`python projects/<name>/main.py --config <the same config> --workdir DIR --mode=eval` and
`python -m common.eval --workdir DIR` evaluate it. The config saved with it is eval-only: no
drop path and no EMA (there is no training history; the official 'model_ema' weights can be
converted as a second checkpoint instead). With --case it is the project's demo config around
the case's model (channels, classes and size from the case), so it restores without ImageNet;
with --state_dict and --preset, configs/imagenet.py:<preset> (evaluation needs the prepared
'tfds:imagenet2012'); --config path.py:args replaces either.
"""
from __future__ import annotations

import argparse
import os
from typing import Any, Callable, Mapping

import ml_collections
import numpy as np
from flax import nnx

from common import convert_cli
from common.tasks.image_configs import data_fields
from common.train import config_io


def eval_only(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy without drop path and EMA, for a checkpoint of converted weights (it has neither)."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.model.drop_path_rate = 0.0
  config.optimizer.ema_decay = 0.0
  return config


def converted_case_config(demo_config: ml_collections.ConfigDict, arch: Any, input_size: int, *,
                          arch_fields: tuple[str, ...]) -> ml_collections.ConfigDict:
  """`demo_config`, eval-only, building the model-config dataclass `arch` on its demo dataset.

  The data takes its channels, classes and size from `arch` and `input_size`, so converted
  official weights of any shape restore without ImageNet. The `arch_fields` of `arch` (the
  project's `config.model.arch` fields) become the `config.model.arch` overrides.
  """
  config = eval_only(demo_config)
  config.data.channels = arch.in_chans
  config.data.num_classes = arch.num_classes
  config.data.image_size = int(input_size)
  config.data.mean = config.data.std = (0.5,) * arch.in_chans
  config.model.arch = ml_collections.ConfigDict(
      {name: getattr(arch, name) for name in arch_fields if getattr(arch, name) is not None})
  config.model.preset = ""
  return config


def with_weights(model_cls: type, cfg: Any, state_dict: Mapping[str, np.ndarray],
                 load_state_dict: Callable[[nnx.Module, Mapping[str, np.ndarray]], Any]
                 ) -> nnx.Module:
  """`model_cls(cfg)` holding `state_dict`, built abstractly (no random init: the state_dict
  sets every variable)."""
  model = nnx.eval_shape(lambda: model_cls(cfg, rngs=nnx.Rngs(0)))
  load_state_dict(model, state_dict)
  return model


def write_checkpoint(args: argparse.Namespace, *, configs_dir: str, project: str,
                     case_arch: Callable[[dict], Any], arch_fields: tuple[str, ...],
                     from_config: Callable[..., Any], model_cls: type,
                     load_state_dict: Callable[[nnx.Module, Mapping[str, np.ndarray]], Any]
                     ) -> str:
  """The `to_checkpoint` of a vision project's `convert_cli.Converter`; returns the directory.

  `case_arch(meta)`: the model config of a case's config.json (official class and kwargs);
  `from_config(config.model, **data_fields)`: the project's config.from_config; the model is
  `model_cls(cfg)` filled by `load_state_dict(model, state_dict)`.
  """
  if args.case:
    meta = convert_cli.read_case_config(args.case)
    size = convert_cli.load_npz(os.path.join(args.case, "inputs.npz"))["x"].shape[-1]
    config = converted_case_config(
        config_io.load_config(f"{configs_dir}/mnist_demo.py:{project}"), case_arch(meta), size,
        arch_fields=arch_fields)
    weights = os.path.join(args.case, "state_dict.npz")
  else:
    if not args.preset:
      raise ValueError("--state_dict needs --preset (the paper model of the weights).")
    config = eval_only(config_io.load_config(f"{configs_dir}/imagenet.py:{args.preset}"))
    weights = args.state_dict
  if args.config:
    config = eval_only(config_io.load_config(args.config))
  # eval_only: no drop path (the identity in eval; the converted model is only evaluated).
  cfg = from_config(config.model, **data_fields(config))
  model = with_weights(model_cls, cfg, convert_cli.load_npz(weights), load_state_dict)
  from common.train import export  # the trainer: only when a checkpoint is written
  return export.write_checkpoint(model, config, args.to_checkpoint)
