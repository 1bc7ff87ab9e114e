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

import os

from flax import nnx

from common.train import config_io, demo_runs, state as state_lib

CONFIG = "projects/biformer/configs/mnist_demo.py"
BASELINE_DIR = "vit_baseline_mnist"
# Trainable parameters of the official factories at 1000 classes (shared/golden/param_counts).
OFFICIAL_PARAMS = {"BiFormer-T": 13_142_760, "BiFormer-S": 25_536_232, "BiFormer-B": 56_804_968,
                   "BiFormer-STL": 28_372_552}


def _config(variant: str, quick: bool):
  return config_io.load_config(f"{CONFIG}:{variant},{'tiny' if quick else 'demo'}")


def preset_params(name: str) -> int:
  """Trainable parameters of a paper preset at 1000 classes, counted abstractly (no init)."""
  from projects.biformer import create
  model = nnx.eval_shape(lambda: create(name, rngs=nnx.Rngs(0)))
  return state_lib.count_params(nnx.state(model, nnx.Param))


def run(out_dir: str, *, quick: bool = False) -> list[dict]:
  os.makedirs(out_dir, exist_ok=True)
  bf_cfg, vit_cfg = _config("biformer", quick), _config("vit", quick)
  bf = demo_runs.train_or_reuse(bf_cfg, os.path.join(out_dir, "biformer"))
  vit = demo_runs.train_shared(vit_cfg, out_dir, BASELINE_DIR, local_name="vit",
                                model_key="vit")
  acc = lambda r: f"{100 * r['eval/classification/test/accuracy']:.1f}%"
  ips = lambda r: f"{r['eval/throughput/images_per_s']:.0f}"
  row = lambda exp, metric, paper, measured: dict(project="biformer", experiment=exp,
                                                  metric=metric, paper=paper, measured=measured)
  exp = "BiFormer vs ViT, MNIST-5k (32x32)"
  rows = [
      row(exp, "test top-1 BiFormer / ViT", "BiFormer-S 83.8% vs DeiT-S 79.8% (ImageNet-1k)",
          f"{acc(bf)} / {acc(vit)}"),
      row(exp, "parameters BiFormer / ViT", "same-size comparison",
          f"{demo_runs.count_params(bf_cfg):,} / {demo_runs.count_params(vit_cfg):,}"),
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
