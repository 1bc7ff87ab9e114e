"""Helpers for `projects/<name>/demo.py`: runs that the main job can re-run without redoing work.

Every demo run is an ordinary trainer run in its own workdir (checkpoints, metrics.jsonl,
final_metrics.json), so it resumes after an interruption and is re-evaluable with
`python -m common.eval --workdir DIR`; a finished run is reused, not retrained.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable

from common.train import config_io
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


def vision_vs_vit_rows(*, project: str, label: str, config_file: str, out_dir: str, quick: bool,
                       paper_top1: str, paper_speed: str, official_params: dict[str, int],
                       preset_params: Callable[[str], int]) -> list[dict]:
  """The svit / biformer demo: `<config_file>:<project>` vs its `:vit` baseline, then presets.

  Both runs use the same data, steps and optimiser ('tiny' when quick, else 'demo'); the ViT is
  shared between the projects' demos (`train_shared`). Rows: test top-1, parameters, eval
  images/s, and each paper preset's parameter count against the official one (`preset_params`
  counts abstractly; quick mode checks the first preset only).
  """
  size = "tiny" if quick else "demo"
  paper_cfg = config_io.load_config(f"{config_file}:{project},{size}")
  vit_cfg = config_io.load_config(f"{config_file}:vit,{size}")
  paper = train_or_reuse(paper_cfg, os.path.join(out_dir, project))
  vit = train_shared(vit_cfg, out_dir, "vit_baseline_mnist", local_name="vit", model_key="vit")
  acc = lambda r: f"{100 * r['eval/classification/test/accuracy']:.1f}%"  # noqa: E731
  ips = lambda r: f"{r['eval/throughput/images_per_s']:.0f}"  # noqa: E731

  def row(exp, metric, claim, measured):
    return dict(project=project, experiment=exp, metric=metric, paper=claim, measured=measured)

  exp = f"{label} vs ViT, MNIST-5k (32x32)"
  rows = [
      row(exp, f"test top-1 {label} / ViT", paper_top1, f"{acc(paper)} / {acc(vit)}"),
      row(exp, f"parameters {label} / ViT", "same-size comparison",
          f"{count_params(paper_cfg):,} / {count_params(vit_cfg):,}"),
      row(exp, f"eval images/s on this CPU, {label} / ViT", paper_speed,
          f"{ips(paper)} / {ips(vit)}"),
  ]
  names = tuple(official_params)[:1] if quick else tuple(official_params)
  counts = {n: preset_params(n) for n in names}
  rows.append(row("paper presets", "trainable parameters (ours = official?)",
                  ", ".join(f"{n} {official_params[n]:,}" for n in names),
                  ", ".join(f"{n} {counts[n]:,} ({'=' if counts[n] == official_params[n] else '!='})"
                            for n in names)))
  return rows
