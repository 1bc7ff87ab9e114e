"""The svit / biformer demo: a paper model against a same-size plain ViT, trained the same way.

`vision_vs_vit_rows` is the body of both projects' demo.py (the README's main job): it trains
configs/mnist_demo.py:<project> and :vit (same data, steps and optimiser; ~1-3 minutes each on
2 CPU cores) and reports test top-1, parameters and eval-forward throughput, whatever they
show; also the parameter counts of the paper presets against the official ones.

The ViT baseline is the same config in projects/svit and projects/biformer, so it is trained
once, in `<out_dir>/../vit_baseline_mnist` (next to the project's folder; the main job passes
`<out>/<project>`), by whichever demo runs first, and reused by the other when its saved config
matches; otherwise each trains its own in `<out_dir>/vit`. Every run is an ordinary `main.py`
run (checkpoints, metrics.jsonl), resumable and re-evaluable with
`python -m common.eval --workdir <dir>`.
"""
from __future__ import annotations

import os
from typing import Callable

from flax import nnx

from common.tasks import demo_runs
from common.train import config_io
from common.train import state as state_lib


def preset_param_count(build: Callable[[nnx.Rngs], nnx.Module]) -> int:
  """Trainable parameters of the model `build(rngs)` makes, counted abstractly (no init)."""
  model = nnx.eval_shape(lambda: build(nnx.Rngs(0)))
  return state_lib.count_params(nnx.state(model, nnx.Param))


def vision_vs_vit_rows(*, project: str, label: str, out_dir: str, quick: bool,
                       paper_top1: str, paper_speed: str, official_params: dict[str, int],
                       build_preset: Callable[[str, nnx.Rngs], nnx.Module]) -> list[dict]:
  """The svit / biformer demo: `projects/<project>/configs/mnist_demo.py:<project>` vs its `:vit`
  baseline (run from the repository root, as the main job does), then the paper presets.

  Both runs use the same data, steps and optimiser ('tiny' when quick, else 'demo'); the ViT is
  shared between the projects' demos (`train_shared`). Rows: test top-1, parameters, eval
  images/s, and each paper preset's parameter count (at 1000 classes, built by
  `build_preset(name, rngs)` and counted abstractly) against the official one; quick mode checks
  the first preset only.
  """
  os.makedirs(out_dir, exist_ok=True)
  size = "tiny" if quick else "demo"
  config_file = f"projects/{project}/configs/mnist_demo.py"
  paper_cfg = config_io.load_config(f"{config_file}:{project},{size}")
  vit_cfg = config_io.load_config(f"{config_file}:vit,{size}")
  paper = demo_runs.train_or_reuse(paper_cfg, os.path.join(out_dir, project))
  vit = demo_runs.train_shared(vit_cfg, out_dir, "vit_baseline_mnist", local_name="vit",
                               model_key="vit")
  acc = lambda r: f"{100 * r['eval/classification/test/accuracy']:.1f}%"  # noqa: E731
  ips = lambda r: f"{r['eval/throughput/images_per_s']:.0f}"  # noqa: E731

  def row(exp, metric, claim, measured):
    return dict(project=project, experiment=exp, metric=metric, paper=claim, measured=measured)

  exp = f"{label} vs ViT, MNIST-5k (32x32)"
  rows = [
      row(exp, f"test top-1 {label} / ViT", paper_top1, f"{acc(paper)} / {acc(vit)}"),
      row(exp, f"parameters {label} / ViT", "same-size comparison",
          f"{demo_runs.count_params(paper_cfg):,} / {demo_runs.count_params(vit_cfg):,}"),
      row(exp, f"eval images/s on this CPU, {label} / ViT", paper_speed,
          f"{ips(paper)} / {ips(vit)}"),
  ]
  names = tuple(official_params)[:1] if quick else tuple(official_params)
  counts = {n: preset_param_count(lambda rngs, n=n: build_preset(n, rngs)) for n in names}
  rows.append(row("paper presets", "trainable parameters (ours = official?)",
                  ", ".join(f"{n} {official_params[n]:,}" for n in names),
                  ", ".join(f"{n} {counts[n]:,} ({'=' if counts[n] == official_params[n] else '!='})"
                            for n in names)))
  return rows
