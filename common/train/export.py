"""Weights from outside training (converted official checkpoints) -> a trainer checkpoint.

The written step 0 has the trainer's state layout, so `main.py --mode=eval`,
`python -m common.eval --workdir DIR` and `config.train.init_from` all read it like any run.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from common.train import checkpoint as ckpt_lib
from common.train import state as state_lib
from common.train import trainer


def write_checkpoint(model: nnx.Module, config: ml_collections.ConfigDict, workdir: str) -> str:
  """Saves `model`'s variables as step 0 of a checkpoint in `workdir`; returns its directory.

  Raises ValueError when the config builds a model of another structure or shape (so a
  mismatched --config fails here, not at evaluation time).
  """
  run = trainer.setup(config)
  state = state_lib.state_from_model(model, run.tx)
  for name in ("params", "model_state"):
    got = jax.tree.map(lambda x: tuple(x.shape), state[name])
    want = jax.tree.map(lambda x: tuple(x.shape), run.abstract_state[name])
    if got != want:
      raise ValueError(f"the converted model's {name} do not match the model of config "
                       f"(project {config.project!r}, model {config.model.to_dict()}); "
                       "pass the config the weights were trained with.")
  state = jax.tree.map(jnp.asarray, state)
  ckpt = ckpt_lib.Checkpointer(workdir, async_save=False)
  ckpt.save(0, state, None, config, force=True)
  ckpt.close()
  return ckpt.directory
