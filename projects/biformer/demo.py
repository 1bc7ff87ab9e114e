"""The BiFormer demo in the README's main job: a small BiFormer vs a same-size ViT, MNIST-5k.

Trains configs/mnist_demo.py:biformer and :vit (same data, steps and optimiser; ~1-3 minutes each
on 2 CPU cores) and reports test top-1, parameters and eval-forward throughput, whatever they
show; also the parameter counts of the paper presets against the official ones.

The ViT baseline is the same config in projects/svit and projects/biformer, so it is trained
once, in `<out_dir>/../vit_baseline_mnist` (next to this project's folder; the main job passes
`<out>/<project>`), by whichever demo runs first, and reused by the other when its saved config
matches; otherwise each trains its own in `<out_dir>/vit`. Every run is an ordinary `main.py`
run (checkpoints, metrics.jsonl), resumable and re-evaluable with
`python -m common.eval --workdir <dir>`.
"""
from __future__ import annotations

import json
import os

from flax import nnx

from common.train import config_io, state as state_lib, trainer

CONFIG = "projects/biformer/configs/mnist_demo.py"
BASELINE_DIR = "vit_baseline_mnist"
# Trainable parameters of the official factories at 1000 classes (shared/golden/param_counts).
OFFICIAL_PARAMS = {"BiFormer-T": 13_142_760, "BiFormer-S": 25_536_232, "BiFormer-B": 56_804_968,
                   "BiFormer-STL": 28_372_552}
# Sections that must agree for a baseline trained by another project to count as ours.
_SAME = ("data", "train", "optimizer", "eval")


def _config(variant: str, quick: bool):
  return config_io.load_config(f"{CONFIG}:{variant},{'tiny' if quick else 'demo'}")


def _train(config, workdir: str) -> dict:
  final_path = os.path.join(workdir, "final_metrics.json")
  if not os.path.exists(final_path):  # finished runs are reused: the main job can be re-run
    trainer.train(config, workdir)
  with open(final_path) as f:
    return json.load(f)


def _comparable(config, workdir: str) -> bool:
  """Whether `workdir` is free or holds a baseline run of the same settings as `config`."""
  saved = os.path.join(workdir, "baseline_config.json")
  if not os.path.exists(workdir):
    return True
  if not os.path.exists(saved):
    return False
  with open(saved) as f:
    other = json.load(f)
  ours = json.loads(config.to_json_best_effort())
  return (all(other.get(k) == ours.get(k) for k in _SAME)
          and other["model"].get("vit") == ours["model"].get("vit"))


def train_baseline(config, out_dir: str) -> dict:
  """The ViT baseline: shared with the other project's demo when the settings agree."""
  shared = os.path.join(os.path.dirname(os.path.abspath(out_dir)), BASELINE_DIR)
  workdir = shared if _comparable(config, shared) else os.path.join(out_dir, "vit")
  os.makedirs(workdir, exist_ok=True)
  # Written first, so that an interrupted baseline is resumed by either project's demo.
  with open(os.path.join(workdir, "baseline_config.json"), "w") as f:
    f.write(config.to_json_best_effort())
  return _train(config, workdir)


def preset_params(name: str) -> int:
  """Trainable parameters of a paper preset at 1000 classes, counted abstractly (no init)."""
  from projects.biformer import create
  model = nnx.eval_shape(lambda: create(name, rngs=nnx.Rngs(0)))
  return state_lib.count_params(nnx.state(model, nnx.Param))


def _count(config) -> int:
  run = trainer.setup(config)
  return state_lib.count_params(run.abstract_state["params"])


def run(out_dir: str, *, quick: bool = False) -> list[dict]:
  os.makedirs(out_dir, exist_ok=True)
  bf_cfg, vit_cfg = _config("biformer", quick), _config("vit", quick)
  bf = _train(bf_cfg, os.path.join(out_dir, "biformer"))
  vit = train_baseline(vit_cfg, out_dir)
  acc = lambda r: f"{100 * r['eval/classification/test/accuracy']:.1f}%"
  ips = lambda r: f"{r['eval/throughput/images_per_s']:.0f}"
  row = lambda exp, metric, paper, measured: dict(project="biformer", experiment=exp,
                                                  metric=metric, paper=paper, measured=measured)
  exp = "BiFormer vs ViT, MNIST-5k (32x32)"
  rows = [
      row(exp, "test top-1 BiFormer / ViT", "BiFormer-S 83.8% vs DeiT-S 79.8% (ImageNet-1k)",
          f"{acc(bf)} / {acc(vit)}"),
      row(exp, "parameters BiFormer / ViT", "same-size comparison",
          f"{_count(bf_cfg):,} / {_count(vit_cfg):,}"),
      row(exp, "eval images/s on this CPU, BiFormer / ViT", "not reported",
          f"{ips(bf)} / {ips(vit)}"),
  ]
  names = ("BiFormer-T",) if quick else tuple(OFFICIAL_PARAMS)
  counts = {n: preset_params(n) for n in names}
  rows.append(row("paper presets", "trainable parameters (ours = official?)",
                  ", ".join(f"{n} {OFFICIAL_PARAMS[n]:,}" for n in names),
                  ", ".join(f"{n} {counts[n]:,} ({'=' if counts[n] == OFFICIAL_PARAMS[n] else '!='})"
                            for n in names)))
  return rows
