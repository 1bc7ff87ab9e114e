"""Helpers for `projects/<name>/demo.py`: runs that the main job can re-run without redoing work.

Every demo run is an ordinary trainer run in its own workdir (checkpoints, metrics.jsonl,
final_metrics.json), so it resumes after an interruption and is re-evaluable with
`python -m common.eval --workdir DIR`; a finished run is reused, not retrained.
"""
from __future__ import annotations

import json
import os
import statistics
from typing import Any, Callable

from common.data.builders import base as builders_base
from common.train import metrics as metrics_lib
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
  # Demos that run at once (`run_demos --jobs`) take turns: the second waits for the first to
  # finish the shared run, then reuses it.
  with builders_base.file_lock(shared + ".lock"):
    workdir = (shared if _comparable(config, shared, same_sections, model_key)
               else os.path.join(out_dir, local_name))
    os.makedirs(workdir, exist_ok=True)
    # Written first, so that an interrupted shared run is resumed by either project's demo.
    with open(os.path.join(workdir, "shared_run_config.json"), "w") as f:
      f.write(config.to_json_best_effort())
    return train_or_reuse(config, workdir)


def mean_std(values, fmt: str = ".3f", scale: float = 1.0) -> str:
  """'mean ± std' over seeds (sample std) of `scale * values`; just 'mean' for one value."""
  values = [scale * float(v) for v in values]
  text = format(statistics.fmean(values), fmt)
  return text if len(values) == 1 else f"{text} ± {format(statistics.stdev(values), fmt)}"


def count_params(config) -> int:
  """Parameters of the model `config` builds, counted abstractly (nothing is initialised)."""
  run = trainer.setup(config, check_data=False)
  return state_lib.count_params(run.abstract_state["params"])


def median_step_time(workdir: str) -> float:
  """Median seconds per train step over the logged intervals, the first (compile) left out."""
  rows = metrics_lib.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  times = [r["step_time_s"] for r in rows if "step_time_s" in r]
  return statistics.median(times[1:] or times)


def train_step_cost(config) -> dict[str, float]:
  """XLA's count for one forward + backward of the task loss at the config's batch: 'flops' and
  the compiled 'temp_bytes' (peak scratch memory). Compiled from shapes alone (no data, nothing
  initialised), so the numbers do not depend on the machine's load. The optimiser update is
  left out: it is the same for every model of equal parameter count."""
  import jax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from common.data import pipeline  # pylint: disable=g-import-not-at-top
  from common.train import task as task_lib  # pylint: disable=g-import-not-at-top
  task = task_lib.load_task(config)
  spec = state_lib.model_spec(task.build_model, 0)
  params, rest = (nnx.to_pure_dict(s) for s in (spec.abstract_params, spec.abstract_rest))
  batch = {k: jax.ShapeDtypeStruct(shape, dtype)
           for k, (shape, dtype) in pipeline.batch_spec(config.data,
                                                        config.train.batch_size).items()}

  def loss(params, rest, batch):
    # Pure dicts in, as the trainer's step: stateful layers (k-means) may update inside.
    model = spec.merge(params, rest)
    # The train step's streams (common/train/step.py): dropout, and default for the rest (mixup).
    return task.loss(model, batch, train=True, rngs=nnx.Rngs(dropout=0, default=0))[0]

  compiled = jax.jit(jax.grad(loss)).lower(params, rest, batch).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return {"flops": float(cost.get("flops", float("nan"))),
          "temp_bytes": float(compiled.memory_analysis().temp_size_in_bytes)}


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
