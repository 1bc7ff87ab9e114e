"""The SViT demo in the README's main job: a small SViT vs a same-size ViT on MNIST-5k.

Trains configs/mnist_demo.py:svit and :vit (same data, steps and optimiser; ~1-3 minutes each
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

CONFIG = "projects/svit/configs/mnist_demo.py"
BASELINE_DIR = "vit_baseline_mnist"
# Trainable parameters of the official factories at 1000 classes (shared/golden/param_counts).
OFFICIAL_PARAMS = {"SViT-S": 25_495_624, "SViT-B": 51_691_288, "SViT-L": 94_971_096}
PAPER_TOP1 = {"SViT-S": 83.6, "SViT-B": 84.8, "SViT-L": 85.3}


def _config(variant: str, quick: bool):
  return config_io.load_config(f"{CONFIG}:{variant},{'tiny' if quick else 'demo'}")


def preset_params(name: str) -> int:
  """Trainable parameters of a paper preset at 1000 classes, counted abstractly (no init)."""
  from projects.svit import STViT, get_preset
  model = nnx.eval_shape(lambda: STViT(get_preset(name), rngs=nnx.Rngs(0)))
  return state_lib.count_params(nnx.state(model, nnx.Param))


def run(out_dir: str, *, quick: bool = False) -> list[dict]:
  os.makedirs(out_dir, exist_ok=True)
  svit_cfg, vit_cfg = _config("svit", quick), _config("vit", quick)
  svit = demo_runs.train_or_reuse(svit_cfg, os.path.join(out_dir, "svit"))
  vit = demo_runs.train_shared(vit_cfg, out_dir, BASELINE_DIR, local_name="vit",
                                model_key="vit")
  acc = lambda r: f"{100 * r['eval/classification/test/accuracy']:.1f}%"
  ips = lambda r: f"{r['eval/throughput/images_per_s']:.0f}"
  row = lambda exp, metric, paper, measured: dict(project="svit", experiment=exp, metric=metric,
                                                  paper=paper, measured=measured)
  rows = [
      row("SViT vs ViT, MNIST-5k (32x32)", "test top-1 SViT / ViT",
          "SViT-S 83.6% vs DeiT-S 79.8% (ImageNet-1k)", f"{acc(svit)} / {acc(vit)}"),
      row("SViT vs ViT, MNIST-5k (32x32)", "parameters SViT / ViT", "same-size comparison",
          f"{demo_runs.count_params(svit_cfg):,} / {demo_runs.count_params(vit_cfg):,}"),
      row("SViT vs ViT, MNIST-5k (32x32)", "eval images/s on this CPU, SViT / ViT",
          "SViT-S 677 FPS (code comment, GPU)", f"{ips(svit)} / {ips(vit)}"),
  ]
  names = ("SViT-S",) if quick else tuple(OFFICIAL_PARAMS)
  counts = {n: preset_params(n) for n in names}
  rows.append(row("paper presets", "trainable parameters (ours = official?)",
                  ", ".join(f"{n} {OFFICIAL_PARAMS[n]:,}" for n in names),
                  ", ".join(f"{n} {counts[n]:,} ({'=' if counts[n] == OFFICIAL_PARAMS[n] else '!='})"
                            for n in names)))
  return rows
