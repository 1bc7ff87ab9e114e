"""Orbax checkpoints: train state, data-iterator position and config, saved atomically.

Each step directory holds three items: `state` (the sharded train state), `data` (one JSON file
per process with its grain iterator position) and `config` (the run's config as JSON, so that
`python -m common.eval --workdir DIR` can rebuild any project's model from the checkpoint alone).
Orbax writes into a temporary directory and renames it when complete, so a run killed
mid-save leaves no step that looks finished; `restore` re-checks that on read and names the
step and file when something is unreadable.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp

ITEMS = ("state", "data", "config")


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be restored; the message names the step and the path."""


class _IteratorSnapshot:
  """The iterator's position captured when `save` is called.

  Orbax may write in a background thread while training goes on; handing grain the live
  iterator would record wherever it has reached by then, not the position at the saved step.
  """

  def __init__(self, state: bytes = b""):
    self.state = state

  def get_state(self) -> bytes:
    return self.state

  def set_state(self, state: bytes) -> None:
    self.state = state

  def start_prefetch(self) -> None:  # called by grain's handler after restore
    pass


def config_to_json(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort())


class Checkpointer:
  """One per run directory (`<workdir>/checkpoints`)."""

  def __init__(self, workdir: str, *, keep: int = 3, async_save: bool = True,
               read_only: bool = False):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=not read_only, read_only=read_only,
        enable_async_checkpointing=async_save, cleanup_tmp_directories=not read_only)
    self.manager = ocp.CheckpointManager(
        self.directory, item_names=ITEMS, options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "data": grain.checkpoint.CheckpointHandler(),
                       "config": ocp.JsonCheckpointHandler()})

  def all_steps(self) -> list[int]:
    self.manager.reload()  # another process (or a killed run) may have written steps since
    return sorted(self.manager.all_steps())

  def latest_step(self) -> int | None:
    steps = self.all_steps()
    return steps[-1] if steps else None

  def save(self, step: int, state: Any, data_iter: Any, config: ml_collections.ConfigDict, *,
           force: bool = False) -> bool:
    snapshot = _IteratorSnapshot(json.dumps(data_iter.get_state()).encode()
                                 if data_iter is not None else b"{}")
    return self.manager.save(step, force=force, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=grain.checkpoint.CheckpointSave(snapshot),
        config=ocp.args.JsonSave(config_to_json(config))))

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()

  def restore(self, step: int, abstract_state: Any, data_iter: Any = None) -> Any:
    """Restores `state` onto the shardings in `abstract_state` (any mesh) and the data position."""
    step_dir = os.path.join(self.directory, str(step))
    args = {"state": ocp.args.StandardRestore(abstract_state)}
    snapshot = _IteratorSnapshot()
    if data_iter is not None:
      args["data"] = grain.checkpoint.CheckpointRestore(snapshot)
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(**args))
    except Exception as e:  # orbax raises many types for truncated or missing files
      raise CheckpointError(
          f"checkpoint step {step} in {step_dir} could not be restored "
          f"({type(e).__name__}: {_first_line(e)}). Delete that step directory to resume from the "
          f"previous one, or pass --restore_fallback to do so automatically.") from e
    if data_iter is not None:
      try:
        data_iter.set_state(json.loads(snapshot.state.decode()))
      except Exception as e:
        raise CheckpointError(f"checkpoint step {step}: the data-iterator position in "
                              f"{step_dir}/data is unreadable ({_first_line(e)}).") from e
    return restored["state"]

  def restore_latest(self, abstract_state: Any, data_iter: Any = None, *,
                     fallback: bool = False) -> tuple[int | None, Any]:
    """Newest restorable step; with `fallback`, unreadable newer steps are skipped (and logged)."""
    for step in reversed(self.all_steps()):
      try:
        return step, self.restore(step, abstract_state, data_iter)
      except CheckpointError as e:
        if not fallback:
          raise
        logging.error("%s -- falling back to the previous checkpoint.", e)
    return None, None


def _first_line(e: BaseException) -> str:
  text = str(e).strip().splitlines()
  return text[0][:300] if text else ""


def read_config(workdir: str, step: int | None = None) -> tuple[int, ml_collections.ConfigDict]:
  """The config saved beside a checkpoint (latest step by default)."""
  ckpt = Checkpointer(workdir, read_only=True, async_save=False)
  steps = ckpt.all_steps()
  if not steps:
    raise FileNotFoundError(f"no checkpoint under {ckpt.directory}: train first, or point "
                            "--workdir at a directory that holds checkpoints/<step>/.")
  if step is None:
    step = steps[-1]
  elif step not in steps:
    raise ValueError(f"checkpoint step {step} not found in {ckpt.directory}; available: {steps}.")
  try:
    cfg = ckpt.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
  except Exception as e:
    raise CheckpointError(f"checkpoint step {step} in {ckpt.directory}/{step}: its config.json "
                          f"is unreadable ({_first_line(e)}).") from e
  return step, ml_collections.ConfigDict(cfg["config"])
