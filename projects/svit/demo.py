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

from common.train import demo_runs, state as state_lib

CONFIG = "projects/svit/configs/mnist_demo.py"
# Trainable parameters of the official factories at 1000 classes (shared/golden/param_counts).
OFFICIAL_PARAMS = {"SViT-S": 25_495_624, "SViT-B": 51_691_288, "SViT-L": 94_971_096}


def preset_params(name: str) -> int:
  """Trainable parameters of a paper preset at 1000 classes, counted abstractly (no init)."""
  from projects.svit import STViT, get_preset
  model = nnx.eval_shape(lambda: STViT(get_preset(name), rngs=nnx.Rngs(0)))
  return state_lib.count_params(nnx.state(model, nnx.Param))


def run(out_dir: str, *, quick: bool = False) -> list[dict]:
  os.makedirs(out_dir, exist_ok=True)
  return demo_runs.vision_vs_vit_rows(
      project="svit", label="SViT", config_file=CONFIG, out_dir=out_dir, quick=quick,
      paper_top1="SViT-S 83.6% vs DeiT-S 79.8% (ImageNet-1k)",
      paper_speed="SViT-S 677 FPS (code comment, GPU)", official_params=OFFICIAL_PARAMS,
      preset_params=preset_params)
