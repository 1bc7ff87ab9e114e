"""Helpers for `projects/<name>/demo.py`: runs that the main job can re-run without redoing work.

Every demo run is an ordinary trainer run in its own workdir (checkpoints, metrics.jsonl,
final_metrics.json), so it resumes after an interruption and is re-evaluable with
`python -m common.eval --workdir DIR`; a finished run is reused, not retrained.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable

from common.train import state as state_lib
from common.train import trainer


def train_or_reuse(config, workdir: str, **train_kwargs) -> dict:
  """Final metrics of the run in `workdir`, training (or resuming) it first if unfinished."""
  final_path = os.path.join(workdir, "final_metrics.json")
  if not os.path.exists(final_path):
    trainer.train(config, workdir, **train_kwargs)
  with open(final_path) as f:
    return json.load(f)


def _comparable(config, workdir: str, same_sections: tuple[str, ...], model_key: str) -> bool:
  """Whether `workdir` is free or holds a run whose settings match `config` where it matters."""
  saved = os.path.join(workdir, "shared_run_config.json")
  if not os.path.exists(workdir):
    return True
  if not os.path.exists(saved):
    return False
  with open(saved) as f:
    other = json.load(f)
  ours = json.loads(config.to_json_best_effort())
  return (all(other.get(k) == ours.get(k) for k in same_sections)
          and other["model"].get(model_key) == ours["model"].get(model_key))


def train_shared(config, out_dir: str, shared_name: str, *, local_name: str,
                 same_sections: tuple[str, ...] = ("data", "train", "optimizer", "eval"),
                 model_key: str = "name") -> dict:
  """A run that several projects' demos share (e.g. one ViT baseline for svit and biformer).

  It lives in `<out_dir>/../<shared_name>` (the main job passes `<out>/<project>` as out_dir),
  trained by whichever demo comes first and reused by the others when `same_sections` and
  `config.model[model_key]` agree; otherwise this demo trains its own in `<out_dir>/<local_name>`.
  """
  shared = os.path.join(os.path.dirname(os.path.abspath(out_dir)), shared_name)
  workdir = (shared if _comparable(config, shared, same_sections, model_key)
             else os.path.join(out_dir, local_name))
  os.makedirs(workdir, exist_ok=True)
  # Written first, so that an interrupted shared run is resumed by either project's demo.
  with open(os.path.join(workdir, "shared_run_config.json"), "w") as f:
    f.write(config.to_json_best_effort())
  return train_or_reuse(config, workdir)


def count_params(config) -> int:
  """Parameters of the model `config` builds, counted abstractly (nothing is initialised)."""
  run = trainer.setup(config, check_data=False)
  return state_lib.count_params(run.abstract_state["params"])


def export_once(workdir: str, export: Callable[[], Any]) -> str:
  """Runs `export()` (which writes a step-0 checkpoint into `workdir`) unless one is there.

  Checks for a finished checkpoint rather than for the folder, so an export killed midway
  (Orbax leaves only a temporary directory) is redone on the next run.
  """
  from common.train import checkpoint  # pylint: disable=g-import-not-at-top
  done = False
  if os.path.isdir(os.path.join(workdir, "checkpoints")):
    ckpt = checkpoint.Checkpointer(workdir, async_save=False, read_only=True)
    done = ckpt.latest_step() is not None
    ckpt.close()
  if not done:
    export()
  return workdir
