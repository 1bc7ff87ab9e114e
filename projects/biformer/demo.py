"""The BiFormer demos: a small BiFormer vs a same-size ViT (main job), and the token-mixer
ablation (outside the main job).

`run` (the README's main job): common/tasks/image_demo.py's `vision_vs_vit_rows`, shared with
projects/svit, whose demo trains the same ViT baseline: configs/mnist_demo.py:biformer and
:vit, then the paper presets' parameter counts against the official ones.

`ablation` (`python -m projects.biformer.demo ablation OUT`, ~34 min on 2 CPU cores; the main
job has no time left for it): configs/mixer_ablation.py, one BiFormer-STL backbone whose
routed stages take each token mixer in turn (BRA top-4, top-1, all regions = global, local
windows, SViT's super tokens), 3 seeds each, on two far-apart digits labelled by the larger.
Rows: test top-1, XLA-counted train-step FLOPs, parameters, median train step and eval img/s.
Every run is an ordinary main.py run in OUT/mixer_<variant>_s<seed>, reused when finished.
"""
from __future__ import annotations

import os

from common.tasks import demo_runs, image_demo
from common.train import config_io
from projects.biformer import BiFormer, preset

# Wall minutes in the last serial main job (2026-12-05, Intel VM): `run_demos` starts the
# longest demos first when several run at once.
MAIN_JOB_MINUTES = 3.2

# Trainable parameters of the official factories at 1000 classes (shared/golden/param_counts).
OFFICIAL_PARAMS = {"BiFormer-T": 13_142_760, "BiFormer-S": 25_536_232, "BiFormer-B": 56_804_968,
                   "BiFormer-STL": 28_372_552}
ABLATION = "projects/biformer/configs/mixer_ablation.py"
# variant -> what the row calls it (configs/mixer_ablation.py VARIANTS)
MIXERS = {"top4": "BRA top-4 of 49 regions", "top1": "BRA top-1", "all": "all 49 regions (global)",
          "local": "local windows (own region)", "stoken": "super tokens (SViT)"}
SEEDS = (0, 1, 2)


def run(out_dir: str, *, quick: bool = False) -> list[dict]:
  return image_demo.vision_vs_vit_rows(
      project="biformer", label="BiFormer", out_dir=out_dir, quick=quick,
      paper_top1="BiFormer-S 83.8% vs DeiT-S 79.8% (ImageNet-1k)",
      paper_speed="not reported", official_params=OFFICIAL_PARAMS,
      build_preset=lambda name, rngs: BiFormer(preset(name), rngs=rngs))  # at 1000 classes


def ablation(out_dir: str, *, quick: bool = False) -> list[dict]:
  """The token-mixer ablation (module docstring): one row per mixer, mean ± std over seeds."""
  seeds = SEEDS[:1] if quick else SEEDS
  rows = []
  for variant, label in MIXERS.items():
    config = config_io.load_config(f"{ABLATION}:{variant},{'tiny' if quick else 'demo'}")
    finals, times = [], []
    for seed in seeds:
      config.seed = seed
      workdir = os.path.join(out_dir, f"mixer_{variant}_s{seed}")
      finals.append(demo_runs.train_or_reuse(config, workdir))
      times.append(demo_runs.median_step_time(workdir))
    cost = demo_runs.train_step_cost(config)

    def cell(key, fmt, scale=1.0, finals=finals):
      return demo_runs.mean_std([f[key] for f in finals], fmt, scale)

    rows.append(dict(
        project="biformer",
        experiment=f"token-mixer ablation, BiFormer-STL backbone, two digits on 112x112 "
                   f"({len(seeds)} seeds, {config.train.num_steps} steps)",
        metric=f"{label}: test top-1 / train-step GFLOP (XLA, batch "
               f"{config.train.batch_size}) / parameters / train step ms / eval img/s",
        paper="BRA top-k above local windows, near global attention at lower cost (BiFormer's "
              "STL-layout ablation); super tokens above local windows (SViT's ablation); "
              "no numbers in shared/specs/paper_facts.md",
        measured=(f"{cell('eval/classification/test/accuracy', '.1f', 100.0)}% / "
                  f"{cost['flops'] / 1e9:.1f} / {demo_runs.count_params(config):,} / "
                  f"{demo_runs.mean_std(times, '.0f', 1e3)} / "
                  f"{cell('eval/throughput/images_per_s', '.0f')}")))
  return rows


if __name__ == "__main__":
  from projects import run_demos
  run_demos.run_mode("the BiFormer token-mixer ablation, outside the main job (module "
                     "docstring)", {"ablation": ablation})
