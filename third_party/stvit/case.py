"""Runs an official-STViT golden case folder (config.json, state_dict.npz, inputs.npz).

Outputs use the official names and layouts: `logits` (N, classes) and `stage0..` as NCHW maps
of module `layers.{i}` (stages before the last end with PatchMerging). See
shared/golden/README.md for the format.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common.convert_cli import check_case_dir, load_npz, read_case_config
from projects.svit.model import STViT
from third_party.stvit import config as config_lib
from third_party.stvit import weights

Array = np.ndarray


def load_case(case_dir: str) -> tuple[dict[str, Any], dict[str, Array], dict[str, Array]]:
  """Returns (config.json contents, state_dict, inputs) of a case folder."""
  check_case_dir(case_dir)
  meta = read_case_config(case_dir)
  if meta.get("model", "STViT") != "STViT":
    raise ValueError(f"config.json model={meta.get('model')!r}; this converter handles 'STViT'.")
  return (meta, load_npz(os.path.join(case_dir, "state_dict.npz")),
          load_npz(os.path.join(case_dir, "inputs.npz")))


def convert(kwargs: Mapping[str, Any], state_dict: Mapping[str, Array]) -> STViT:
  """Builds the STViT equivalent to `STViT(**kwargs)` holding the official weights.

  The model is first built abstractly (nnx.eval_shape), so no random init is spent on
  weights that are overwritten anyway.
  """
  config = config_lib.config_from_kwargs(kwargs)
  model = nnx.eval_shape(lambda: STViT(config, rngs=nnx.Rngs(0)))
  weights.load_state_dict(model, state_dict)
  return model


def forward(model: STViT, x_nchw: Array) -> dict[str, Array]:
  """Eval-mode forward on an NCHW batch; returns logits and NCHW stage maps as numpy."""
  graphdef, state = nnx.split(model)

  @jax.jit
  def run(state, x):
    logits, stages = nnx.merge(graphdef, state)(x, train=False, return_stages=True)
    return logits, stages

  # fp32 matmuls/convs on every backend (TF32/bf16 passes are ~1e-3 off).
  with jax.default_matmul_precision("highest"):
    logits, stages = run(state, jnp.asarray(x_nchw).transpose(0, 2, 3, 1))
  out = {"logits": np.asarray(logits)}
  for i, s in enumerate(stages):
    out[f"stage{i}"] = np.asarray(s).transpose(0, 3, 1, 2)
  return out


def run_case(case_dir: str) -> dict[str, Array]:
  """Converts the case's weights and returns the outputs under the official key names."""
  meta, state_dict, inputs = load_case(case_dir)
  if "x" not in inputs:
    raise ValueError(f"inputs.npz of {case_dir!r} has keys {sorted(inputs)}; expected 'x'.")
  model = convert(meta["kwargs"], state_dict)
  return forward(model, inputs["x"])
