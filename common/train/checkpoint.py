"""Orbax checkpoints: train state, data-iterator position and config, saved atomically.

Each step directory holds three items: `state` (the sharded train state), `data` (one JSON file
per process with its grain iterator position) and `config` (the run's config as JSON, so that
`python -m common.eval --workdir DIR` can rebuild any project's model from the checkpoint alone).
Orbax writes into a temporary directory and renames it when complete, so a run killed
mid-save leaves no step that looks finished (the next start deletes the temporary directory);
`restore` names the step and the damaged file when something is unreadable, and
`restore_latest(fallback=True)` steps back to the newest readable step.

Restoring onto another mesh or process count: the state is resharded by Orbax onto whatever
shardings the caller passes; the data position follows the rule in `_restore_data`.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp

from common.train import checkpoint_files
from common.train import orphaned_reads

ITEMS = ("state", "data", "config")


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be restored; the message names the step and the path."""


class StateMismatch(CheckpointError):
  """The checkpoint's files are intact but hold another model's state (a config change).

  Never a reason to set a checkpoint aside: `restore_latest(fallback=True)` re-raises it.
  """


class _IteratorSnapshot:
  """The iterator's position captured when `save` is called.

  Orbax may write in a background thread while training goes on; handing grain the live
  iterator would record wherever it has reached by then, not the position at the saved step.
  (Restoring reads grain's files directly: see `Checkpointer._restore_data`.)
  """

  def __init__(self, state: bytes = b""):
    self.state = state

  def get_state(self) -> bytes:
    return self.state


def config_to_json(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort())


class Checkpointer:
  """One per run directory (`<workdir>/checkpoints`)."""

  def __init__(self, workdir: str, *, keep: int = 3, async_save: bool = True,
               read_only: bool = False):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    orphaned_reads.silence()  # any of this manager's reads may fail and leave reads behind
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

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def restore(self, step: int, abstract_state: Any, data_iter: Any = None) -> Any:
    """Restores `state` onto the shardings in `abstract_state` (any mesh) and the data position."""
    problems = self.shape_problems(step, abstract_state)
    if problems:
      raise StateMismatch(_mismatch_message(step, self.directory, "; ".join(problems[:4])))
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state)))
    except Exception as e:  # orbax raises many types for truncated or missing files
      bad = checkpoint_files.find_bad_file(self.step_dir(step), e)
      if bad is None and any(m in _first_line(e) for m in _STRUCTURE_MISMATCH):
        raise StateMismatch(_mismatch_message(step, self.directory, _first_line(e))) from e
      raise self._damaged(step, e, bad) from e
    if data_iter is not None:
      self._restore_data(step, data_iter)
    return restored["state"]

  def _restore_data(self, step: int, data_iter: Any) -> None:
    """Sets `data_iter` to the position saved at `step`, on any process count.

    The rule: each process restores its own file when the process count is unchanged. On
    another count, the saved positions are used if they are all equal, which they are for
    every pipeline that follows common.data.process_order (a position counts global batches):
    the resumed data is then exactly what an uninterrupted run would read. Positions that
    differ between processes (a task with per-process streams) cannot be mapped onto another
    process count: the data restarts from its beginning, with a warning.
    """
    data_dir = os.path.join(self.step_dir(step), "data")
    saved = checkpoint_files.saved_data_positions(data_dir)
    here = (jax.process_index(), jax.process_count())
    if not saved:
      raise CheckpointError(f"checkpoint step {step}: no data-iterator position in {data_dir} "
                            "(expected process_<i>-of-<n>.json); delete the step directory to "
                            "resume from the previous one.")
    states = {}
    for key in ([here] if here in saved else sorted(saved)):
      try:
        with open(saved[key]) as f:
          states[key] = json.load(f)
      except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint step {step}: the data-iterator position in "
                              f"{saved[key]} is unreadable ({_first_line(e)}).") from e
    if here not in saved:
      counts = sorted({n for _, n in saved})
      if len({json.dumps(s, sort_keys=True) for s in states.values()}) != 1:
        logging.warning(
            "checkpoint step %d was written by %s process(es) whose data positions differ, and "
            "this run has %d: the data position cannot be mapped, so the data restarts from the "
            "beginning (examples will repeat). Build the task's train_data on "
            "common.data.process_order to make positions process-count independent.",
            step, counts, here[1])
        return
      logging.info("checkpoint step %d: data position saved by %s process(es) restored on %d "
                   "(the global data order does not depend on the process count).",
                   step, counts, here[1])
    try:
      data_iter.set_state(next(iter(states.values())))
    except Exception as e:
      raise CheckpointError(f"checkpoint step {step}: the data-iterator position in {data_dir} "
                            f"does not fit this run's data pipeline ({_first_line(e)}); was the "
                            "data config changed?") from e

  def restore_latest(self, abstract_state: Any, data_iter: Any = None, *,
                     fallback: bool = False) -> tuple[int | None, Any]:
    """Newest restorable step; with `fallback`, unreadable newer steps are skipped.

    Skipped steps are moved to `<workdir>/checkpoints_unreadable/<step>` (kept for inspection,
    never deleted), so the resumed run can save that step number again.
    """
    skipped = []
    steps = self.all_steps()
    for step in reversed(steps):
      try:
        restored = self.restore(step, abstract_state, data_iter)
      except StateMismatch:
        raise  # a config change, not damage: nothing is set aside
      except CheckpointError as e:
        if not fallback:
          raise
        logging.error("%s -- falling back to the previous checkpoint.", e)
        skipped.append(step)
        continue
      self._set_aside(skipped)
      return step, restored
    if steps:  # never a silent start from step 0 in a directory that holds checkpoints
      raise CheckpointError(
          f"none of the checkpoints in {self.directory} (steps {steps}) can be restored, so "
          "nothing was set aside. Inspect them, or pass --start_fresh to move them aside and "
          "train from step 0.")
    return None, None

  def shape_problems(self, step: int, abstract_state: Any) -> list[str]:
    """How the state saved at `step` differs from `abstract_state` (from Orbax's metadata).

    Empty when every entry exists on both sides with the same shape. Reading only the metadata
    tells a config change from damage before any array is read; unreadable metadata is damage.
    """
    try:
      saved = self.manager.item_metadata(step)["state"]
      saved = {_path(p): tuple(m.shape) for p, m in jax.tree_util.tree_flatten_with_path(saved)[0]}
    except Exception as e:  # truncated or missing metadata files
      raise self._damaged(step, e, checkpoint_files.find_bad_file(self.step_dir(step), e)) from e
    wanted = {_path(p): tuple(a.shape) for p, a in
              jax.tree_util.tree_flatten_with_path(abstract_state)[0]}
    problems = [(k, f"{k} is {saved[k]} in the checkpoint but {wanted[k]} here")
                for k in set(saved) & set(wanted) if saved[k] != wanted[k]]
    problems += [(k, f"{k} is only in the checkpoint") for k in set(saved) - set(wanted)]
    problems += [(k, f"{k} is not in the checkpoint") for k in set(wanted) - set(saved)]
    # Parameters first: they name the layer; optimiser moments only repeat them.
    return [text for k, text in sorted(problems, key=lambda p: (not p[0].startswith("params"), p[0]))]

  def saved_config(self, step: int) -> dict:
    """The config saved beside `step` (JSON), or CheckpointError when it is unreadable."""
    try:
      cfg = self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    except Exception as e:
      raise CheckpointError(f"checkpoint step {step} in {self.directory}/{step}: its config is "
                            f"unreadable ({_first_line(e)}).") from e
    return cfg["config"]

  def _damaged(self, step: int, error: BaseException, bad: str | None) -> CheckpointError:
    where = f"file {bad}" if bad else f"directory {self.step_dir(step)}"
    return CheckpointError(
        f"checkpoint step {step} could not be restored: {where} is damaged or missing "
        f"({type(error).__name__}: {_first_line(error)}). Delete {self.step_dir(step)} to resume "
        "from the previous step, or pass --restore_fallback to skip it automatically.")

  def _set_aside(self, steps: list[int]) -> None:
    if not steps:
      return
    aside = os.path.join(os.path.dirname(self.directory), "checkpoints_unreadable")
    if jax.process_index() == 0:
      os.makedirs(aside, exist_ok=True)
      for step in steps:
        target = os.path.join(aside, str(step))
        while os.path.exists(target):
          target += "_"
        os.rename(self.step_dir(step), target)
        logging.warning("moved unreadable checkpoint step %d to %s", step, target)
    if jax.process_count() > 1:  # nobody saves into the step number before it is free
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices("checkpoint_set_aside")
    self.manager.reload()


# What Orbax says when the files are intact but the target state has another tree structure.
_STRUCTURE_MISMATCH = ("tree structures do not match", "Structure mismatch")


def _path(keys: tuple) -> str:
  """'params/w1/kernel': one spelling for dict keys, sequence indices and attributes alike
  (Orbax's metadata tree stores an optimiser's namedtuples as dicts)."""
  parts = []
  for k in keys:
    for attr in ("key", "idx", "name"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return "/".join(parts)


def _mismatch_message(step: int, directory: str, detail: str) -> str:
  return (f"checkpoint step {step} in {directory} holds a different model than the one this "
          f"config builds ({detail}). Use the config the run was trained with (it is saved "
          "beside the checkpoint: `python -m common.eval --workdir DIR` reads it) or another "
          "--workdir.")


def set_aside_run(workdir: str) -> str | None:
  """Moves a workdir's previous run (checkpoints, metrics) into `<workdir>/previous_<UTC time>/`.

  For `--start_fresh`: nothing is deleted. Returns the new folder, or None when there was no run.
  """
  workdir = os.path.abspath(workdir)
  names = [n for n in ("checkpoints", "checkpoints_unreadable", "metrics.jsonl",
                       "final_metrics.json", "tensorboard") if os.path.exists(os.path.join(workdir, n))]
  if not names:
    return None
  stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
  aside = os.path.join(workdir, f"previous_{stamp}")
  os.makedirs(aside)
  for name in names:
    os.rename(os.path.join(workdir, name), os.path.join(aside, name))
  logging.warning("--start_fresh: moved the previous run's %s to %s", ", ".join(names), aside)
  return aside


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
  return step, ml_collections.ConfigDict(ckpt.saved_config(step))
