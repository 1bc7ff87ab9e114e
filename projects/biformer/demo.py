"""The BiFormer demo in the README's main job: a small BiFormer vs a same-size ViT, MNIST-5k.

common/tasks/image_demo.py runs it (`vision_vs_vit_rows`, shared with projects/svit, whose
demo trains the same ViT baseline): configs/mnist_demo.py:biformer and :vit, then the paper
presets' parameter counts against the official ones.
"""
from __future__ import annotations

from common.tasks import image_demo
from projects.biformer import BiFormer, preset

# Trainable parameters of the official factories at 1000 classes (shared/golden/param_counts).
OFFICIAL_PARAMS = {"BiFormer-T": 13_142_760, "BiFormer-S": 25_536_232, "BiFormer-B": 56_804_968,
                   "BiFormer-STL": 28_372_552}


def run(out_dir: str, *, quick: bool = False) -> list[dict]:
  return image_demo.vision_vs_vit_rows(
      project="biformer", label="BiFormer", out_dir=out_dir, quick=quick,
      paper_top1="BiFormer-S 83.8% vs DeiT-S 79.8% (ImageNet-1k)",
      paper_speed="not reported", official_params=OFFICIAL_PARAMS,
      build_preset=lambda name, rngs: BiFormer(preset(name), rngs=rngs))  # at 1000 classes
