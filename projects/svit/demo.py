"""The SViT demo in the README's main job: a small SViT vs a same-size ViT on MNIST-5k.

common/tasks/image_demo.py runs it (`vision_vs_vit_rows`, shared with projects/biformer, whose
demo trains the same ViT baseline): configs/mnist_demo.py:svit and :vit, then the paper
presets' parameter counts against the official ones.
"""
from __future__ import annotations

from common.tasks import image_demo
from projects.svit import STViT, preset

# Wall minutes in the last serial main job (2026-12-05, Intel VM): `run_demos` starts the
# longest demos first when several run at once.
MAIN_JOB_MINUTES = 1.0

# Trainable parameters of the official factories at 1000 classes (shared/golden/param_counts).
OFFICIAL_PARAMS = {"SViT-S": 25_495_624, "SViT-B": 51_691_288, "SViT-L": 94_971_096}


def run(out_dir: str, *, quick: bool = False) -> list[dict]:
  return image_demo.vision_vs_vit_rows(
      project="svit", label="SViT", out_dir=out_dir, quick=quick,
      paper_top1="SViT-S 83.6% vs DeiT-S 79.8% (ImageNet-1k)",
      paper_speed="SViT-S 677 FPS (code comment, GPU)", official_params=OFFICIAL_PARAMS,
      build_preset=lambda name, rngs: STViT(preset(name), rngs=rngs))  # at 1000 classes
