"""The Lazy Neuron demo in the README's main job: sparsity emerges; top-k vs dense.

Trains, on MNIST-5k, a small ViT with dense ReLU MLPs, the same with top-k MLPs, and a dense
GELU baseline; then dense ReLU vs top-k with 40% of the training labels randomised; then a tiny
T5 with ReLU MLPs on span corruption of the Python standard library's sources.

The top-k runs take k from the dense ReLU run's own measured density: k = TOPK_OF_DENSITY (0.6)
x its mean fraction of non-zero MLP activations on the training split x mlp_dim, i.e. "an even
sparser activation" just below the model's natural density, as the paper sets ViT-B/16's k
(k / mlp_dim below its natural 6.3%). A fixed k far below the natural density (the config's
mlp_dim // 24) would test a different regime. Each run is an
ordinary `main.py` run (own workdir, checkpoints, metrics.jsonl), so any of them can be resumed
or re-evaluated with `python -m common.eval --workdir <out>/<run>`.
"""
from __future__ import annotations

import os

from common.tasks import demo_runs
from common.train import config_io, metrics as metrics_lib, trainer

CONFIGS = "projects/lazy_neuron/configs"
# name -> (config spec, steps); `quick` swaps the size variant for `tiny` (seconds per run).
RUNS = {
    "vit_relu": (f"{CONFIGS}/vit_mnist.py:demo,relu", None),
    "vit_topk": (f"{CONFIGS}/vit_mnist.py:demo,topk", None),
    "vit_gelu": (f"{CONFIGS}/vit_mnist.py:demo,gelu", None),
    "vit_relu_noisy": (f"{CONFIGS}/vit_mnist.py:demo,relu,label_noise=0.4", None),
    "vit_topk_noisy": (f"{CONFIGS}/vit_mnist.py:demo,topk,label_noise=0.4", None),
    "t5_relu": (f"{CONFIGS}/t5_span.py:demo,relu", None),
}


def _config(spec: str, quick: bool):
  if quick:
    spec = spec.replace(":demo", ":tiny")
  return config_io.load_config(spec)


TOPK_OF_DENSITY = 0.6   # k / (dense density x mlp_dim): the paper's "just below natural"


def topk_from_density(density: float, mlp_dim: int) -> int:
  """k = TOPK_OF_DENSITY x density x mlp_dim, at least 1."""
  return max(1, round(TOPK_OF_DENSITY * density * mlp_dim))


def train_density(final: dict, config) -> float:
  """A finished run's mean non-zero MLP fraction on its training-statistics split."""
  return final[f"eval/sparsity/{config.eval.split_for_train_stats}/act_nonzero/mean"]


def _train(name: str, out_dir: str, quick: bool, *, top_k: int = 0) -> tuple[dict, list[dict]]:
  spec, _ = RUNS[name]
  workdir = os.path.join(out_dir, name)
  config = _config(spec, quick)
  if top_k:
    config.model.top_k = top_k
  final = demo_runs.train_or_reuse(config, workdir)
  rows = metrics_lib.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  return final, rows


def _init_sparsity(spec: str, quick: bool) -> float:
  """Fraction of non-zero ReLU activations of the untrained model (sparsity at step 0)."""
  config = _config(spec, quick)
  run = trainer.setup(config)
  state = trainer.init_state(run)
  results = trainer.evaluate(run, state)
  return results["sparsity/test/act_nonzero/mean"]


def _pct(x: float) -> str:
  return f"{100 * x:.1f}%"


def run(out_dir: str, *, quick: bool = False) -> list[dict]:
  os.makedirs(out_dir, exist_ok=True)
  res = {"vit_relu": _train("vit_relu", out_dir, quick)[0]}
  density = train_density(res["vit_relu"], _config(RUNS["vit_relu"][0], quick))
  mlp_dim = _config(RUNS["vit_topk"][0], quick).model.mlp_dim
  k = topk_from_density(density, mlp_dim)
  for name in RUNS:
    if name not in res:
      res[name] = _train(name, out_dir, quick, top_k=k if "topk" in name else 0)[0]
  init = _init_sparsity(RUNS["vit_relu"][0], quick)
  acc = lambda r: res[r]["eval/classification/test/accuracy"]
  ece = lambda r: res[r]["eval/classification/test/ece"]
  nz = lambda r, split="test": res[r][f"eval/sparsity/{split}/act_nonzero/mean"]
  noisy = lambda r: res[r]["eval/robustness/test/gaussian_noise/mean_accuracy"]
  per_layer = ", ".join(_pct(v) for k, v in sorted(res["vit_relu"].items())
                        if k.startswith("eval/sparsity/test/act_nonzero/layer_"))
  row = lambda exp, metric, paper, measured: dict(project="lazy_neuron", experiment=exp,
                                                  metric=metric, paper=paper, measured=measured)
  rows = [
      row("ViT ReLU, MNIST-5k", "non-zero MLP activations, test (train)",
          "6.3% (ViT-B/16, ImageNet-21k)", f"{_pct(nz('vit_relu'))} ({_pct(nz('vit_relu', 'train'))})"),
      row("ViT ReLU, MNIST-5k", "non-zero at init -> after training",
          "sparsity emerges in training", f"{_pct(init)} -> {_pct(nz('vit_relu'))}"),
      row("ViT ReLU, MNIST-5k", "non-zero per layer (test)",
          "all layers sparse", per_layer),
      row("ViT top-k vs ReLU vs GELU", "k of the top-k runs (from the dense ReLU run)",
          "just below the natural density (ViT-B/16: k/3072 < 6.3%)",
          f"k = {k} of {mlp_dim} = {TOPK_OF_DENSITY} x the dense run's train density "
          f"{_pct(density)}"),
      row("ViT top-k vs ReLU vs GELU", "test accuracy",
          "top-k: no loss of accuracy", f"{_pct(acc('vit_topk'))} / {_pct(acc('vit_relu'))} / "
          f"{_pct(acc('vit_gelu'))}"),
      row("ViT top-k vs ReLU vs GELU", "expected calibration error (15 bins)",
          "top-k better calibrated", f"{ece('vit_topk'):.4f} / {ece('vit_relu'):.4f} / "
          f"{ece('vit_gelu'):.4f}"),
      row("ViT top-k vs ReLU vs GELU", "accuracy under Gaussian noise (mean of sigmas)",
          "top-k more robust", f"{_pct(noisy('vit_topk'))} / {_pct(noisy('vit_relu'))} / "
          f"{_pct(noisy('vit_gelu'))}"),
      row("ViT, 40% labels randomised", "test accuracy top-k / ReLU",
          "top-k less sensitive to noisy labels",
          f"{_pct(acc('vit_topk_noisy'))} / {_pct(acc('vit_relu_noisy'))}"),
      row("T5 ReLU, span corruption, stdlib text", "non-zero MLP activations (validation)",
          "3.0% (T5-Base, C4)", _pct(res["t5_relu"]["eval/sparsity/validation/act_nonzero/mean"])),
  ]
  return rows
