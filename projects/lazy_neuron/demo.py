"""The Lazy Neuron demo in the README's main job: sparsity emerges; top-k vs dense.

Trains, on MNIST-5k, a small ViT with dense ReLU MLPs, the same with top-k MLPs, and a dense
GELU baseline; then dense ReLU vs top-k with 40% of the training labels randomised; then a tiny
T5 with ReLU MLPs on span corruption of the Python standard library's sources. The ReLU and
top-k comparisons (clean and noisy labels) run SEEDS (3) seeds each and report mean ± std; the
GELU baseline and the T5 run one seed. The runs take `steps=` from RUNS and evaluate once, at
the end (the per-layer sparsity over training is in each run's logged train metrics), so that
the whole demo fits its share of the main job's 90 minutes.

Two experiments run outside the main job, which has no time left for them (`python -m
projects.lazy_neuron.demo size_sweep|long_noise OUT`; OUT the demo's own folder reuses its runs):
`size_sweep` trains the dense ReLU ViT of the same recipe at other widths and depths, 3 seeds
each, for the paper's "larger models are sparser"; `long_noise` trains the 40%-noisy-label
comparison for NOISE_LONG_STEPS, long enough that dense ReLU fits the noise.

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
import statistics

from common.tasks import demo_runs
from common.train import config_io, metrics as metrics_lib, trainer

# Wall minutes in the last serial main job (2026-12-05, Intel VM): `run_demos` starts the
# longest demos first when several run at once.
MAIN_JOB_MINUTES = 9.1

CONFIGS = "projects/lazy_neuron/configs"
SEEDS = (0, 1, 2)
# ViT: 400 steps = 6.4 epochs of MNIST-5k (the config's 800 did not fit the main job with three
# seeds). With 40% of the labels randomised, an 800-step dense ReLU run peaked at step 400
# (74.1% test accuracy) and fell to 68.9% by step 800 as it fitted the noise (2026-12-04).
VIT_STEPS, T5_STEPS = 400, 300
# name -> (config spec, number of seeds); `quick` swaps the size variant for `tiny` (seconds
# per run) and runs one seed.
RUNS = {
    "vit_relu": (f"{CONFIGS}/vit_mnist.py:demo,relu,steps={VIT_STEPS}", len(SEEDS)),
    "vit_topk": (f"{CONFIGS}/vit_mnist.py:demo,topk,steps={VIT_STEPS}", len(SEEDS)),
    "vit_gelu": (f"{CONFIGS}/vit_mnist.py:demo,gelu,steps={VIT_STEPS}", 1),
    "vit_relu_noisy": (f"{CONFIGS}/vit_mnist.py:demo,relu,label_noise=0.4,steps={VIT_STEPS}",
                       len(SEEDS)),
    "vit_topk_noisy": (f"{CONFIGS}/vit_mnist.py:demo,topk,label_noise=0.4,steps={VIT_STEPS}",
                       len(SEEDS)),
    "t5_relu": (f"{CONFIGS}/t5_span.py:demo,relu,steps={T5_STEPS}", 1),
}


def _config(spec: str, quick: bool, seed: int = 0):
  if quick:
    spec = spec.replace(":demo", ":tiny").split(",steps=")[0]
  config = config_io.load_config(spec)
  config.seed = seed
  config.train.eval_every = 0   # one evaluation, at the end
  return config


TOPK_OF_DENSITY = 0.6   # k / (dense density x mlp_dim): the paper's "just below natural"


def topk_from_density(density: float, mlp_dim: int) -> int:
  """k = TOPK_OF_DENSITY x density x mlp_dim, at least 1."""
  return max(1, round(TOPK_OF_DENSITY * density * mlp_dim))


def train_density(final: dict, config) -> float:
  """A finished run's mean non-zero MLP fraction on its training-statistics split."""
  return final[f"eval/sparsity/{config.eval.split_for_train_stats}/act_nonzero/mean"]


def _train(name: str, out_dir: str, quick: bool, *, seed: int = 0, top_k: int = 0,
           steps: int = 0) -> tuple[dict, list[dict]]:
  """A run of RUNS[name] (`steps` > 0: that many steps instead, evaluated at each quarter, in a
  workdir of its own)."""
  spec, _ = RUNS[name]
  workdir = os.path.join(out_dir, f"{name}_s{seed}" + (f"_{steps}steps" if steps else ""))
  if steps and not quick:
    spec = spec.replace(f"steps={VIT_STEPS}", f"steps={steps}")
  config = _config(spec, quick, seed)
  if steps:
    config.train.eval_every = max(1, config.train.num_steps // 4)
  if top_k:
    config.model.top_k = top_k
  if "noisy" in name:
    # Their rows read test accuracy only: skip the 12 corruption passes (1.8 s warm, 4.6 s
    # with its compile, per run on 2 vCPU; /tmp timing 2026-12-04).
    config.eval.evaluators = tuple(e for e in config.eval.evaluators if e != "robustness")
  final = demo_runs.train_or_reuse(config, workdir)
  rows = metrics_lib.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  return final, rows


def _seeds(quick: bool, count: int = len(SEEDS)) -> tuple[int, ...]:
  """The first `count` seeds; one in quick mode."""
  return SEEDS[:1] if quick else SEEDS[:count]


def _dense_relu(out_dir: str, quick: bool) -> tuple[list[dict], float, int]:
  """The dense ReLU runs' finals (trained if absent), their mean train density, and the top-k
  runs' k taken from it."""
  finals = [_train("vit_relu", out_dir, quick, seed=s)[0]
            for s in _seeds(quick, RUNS["vit_relu"][1])]
  relu_cfg = _config(RUNS["vit_relu"][0], quick)
  density = statistics.fmean(train_density(r, relu_cfg) for r in finals)
  return finals, density, topk_from_density(density, relu_cfg.model.mlp_dim)


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
  res = {}
  res["vit_relu"], density, k = _dense_relu(out_dir, quick)
  relu_cfg = _config(RUNS["vit_relu"][0], quick)
  mlp_dim = relu_cfg.model.mlp_dim
  for name in RUNS:
    if name not in res:
      res[name] = [_train(name, out_dir, quick, seed=s, top_k=k if "topk" in name else 0)[0]
                   for s in _seeds(quick, RUNS[name][1])]
  init = _init_sparsity(RUNS["vit_relu"][0], quick)

  def cell(name, key, fmt=".1f", scale=100.0, unit="%"):
    return demo_runs.mean_std([r[key] for r in res[name]], fmt, scale) + unit

  acc = lambda r: cell(r, "eval/classification/test/accuracy")  # noqa: E731
  ece = lambda r: cell(r, "eval/classification/test/ece", ".4f", 1.0, "")  # noqa: E731
  nz = lambda r, split="test": cell(r, f"eval/sparsity/{split}/act_nonzero/mean")  # noqa: E731
  robust = lambda r, kind: cell(r, f"eval/robustness/test/{kind}/mean_accuracy")  # noqa: E731
  kinds = [k.split("/")[3] for k in res["vit_relu"][0]
           if k.startswith("eval/robustness/test/") and k.endswith("/mean_accuracy")
           and "/corruptions/" not in k]
  layers = sorted(key for key in res["vit_relu"][0]
                  if key.startswith("eval/sparsity/test/act_nonzero/layer_"))
  per_layer = ", ".join(cell("vit_relu", key) for key in layers)
  n = lambda name: len(res[name])  # noqa: E731
  seeds_note = f"{n('vit_relu')} seeds, mean ± std, {relu_cfg.train.num_steps} steps"

  def row(exp, metric, paper, measured):
    return dict(project="lazy_neuron", experiment=exp, metric=metric, paper=paper,
                measured=measured)

  base = f"ViT ReLU, MNIST-5k ({seeds_note})"
  versus = f"ViT top-k / ReLU / GELU ({seeds_note}; GELU {n('vit_gelu')} seed)"
  return [
      row(base, "non-zero MLP activations, test (train)",
          "6.3% (ViT-B/16, ImageNet-21k)", f"{nz('vit_relu')} ({nz('vit_relu', 'train')})"),
      row(base, "non-zero at init -> after training",
          "sparsity emerges in training", f"{_pct(init)} -> {nz('vit_relu')}"),
      row(base, "non-zero per layer (test)", "all layers sparse", per_layer),
      row(versus, "k of the top-k runs (from the dense ReLU runs)",
          "just below the natural density (ViT-B/16: k/3072 < 6.3%)",
          f"k = {k} of {mlp_dim} = {TOPK_OF_DENSITY} x the dense runs' mean train density "
          f"{_pct(density)}"),
      row(versus, "test accuracy", "top-k: no loss of accuracy",
          f"{acc('vit_topk')} / {acc('vit_relu')} / {acc('vit_gelu')}"),
      row(versus, "expected calibration error (15 bins)", "top-k better calibrated",
          f"{ece('vit_topk')} / {ece('vit_relu')} / {ece('vit_gelu')}"),
      row(versus, "accuracy under input corruptions, mean over "
          f"{len(kinds)} kinds x their levels ({', '.join(kinds)})", "top-k more robust",
          " / ".join(robust(r, "corruptions") for r in ("vit_topk", "vit_relu", "vit_gelu"))),
      row(versus, "the same per kind, top-k / ReLU", "top-k more robust",
          "; ".join(f"{kind} {robust('vit_topk', kind)} / {robust('vit_relu', kind)}"
                    for kind in kinds)),
      row(f"ViT, 40% labels randomised ({seeds_note})", "test accuracy top-k / ReLU",
          "top-k less sensitive to noisy labels",
          f"{acc('vit_topk_noisy')} / {acc('vit_relu_noisy')}"),
      row("T5 ReLU, span corruption, stdlib text (1 seed)",
          "non-zero MLP activations (validation)", "3.0% (T5-Base, C4)",
          nz("t5_relu", "validation")),
  ]


# The size sweep: the demo's dense ReLU ViT (width 128, depth 4, 4 heads of 32, MLP 4x) at other
# widths (heads of 32, MLP 4x) and depths; the main demo's vit_relu seed 0 is the 128 x 4 point.
SWEEP = (dict(width=64, num_heads=2, mlp_dim=256), dict(width=256, num_heads=8, mlp_dim=1024),
         dict(depth=2), dict(depth=8))


def size_sweep(out_dir: str, *, quick: bool = False) -> list[dict]:
  """Non-zero MLP activations (test and train) of dense ReLU ViTs by width and by depth, 3 seeds
  (the demo's own vit_relu runs are the base size)."""
  spec = RUNS["vit_relu"][0]
  seeds = _seeds(quick)
  sizes = [(_config(spec, quick), _dense_relu(out_dir, quick)[0])]
  for fields in SWEEP:
    finals = []
    for seed in seeds:
      config = _config(spec, quick, seed)
      config.model.update(fields)
      name = f"sweep_w{config.model.width}_d{config.model.depth}_s{seed}"
      finals.append(demo_runs.train_or_reuse(config, os.path.join(out_dir, name)))
    sizes.append((config, finals))
  rows = []
  for config, finals in sizes:
    m = config.model
    def cell(key, finals=finals):
      return demo_runs.mean_std([f[key] for f in finals], ".1f", 100.0) + "%"
    rows.append(dict(project="lazy_neuron",
                     experiment=f"ViT ReLU, width {m.width}, depth {m.depth}, MLP {m.mlp_dim} "
                                f"({len(finals)} seeds, {config.train.num_steps} steps)",
                     metric="non-zero MLP activations, test (train); test accuracy",
                     paper="larger models are sparser",
                     measured=f"{cell('eval/sparsity/test/act_nonzero/mean')} "
                              f"({cell('eval/sparsity/train/act_nonzero/mean')}); "
                              f"{cell('eval/classification/test/accuracy')}"))
  return rows


# 1,600 steps (25.6 epochs): dense ReLU's test accuracy under 40% noisy labels peaked at step 400
# and fell as it fitted the noise in an 800-step run (module docstring of RUNS' steps).
NOISE_LONG_STEPS = 1600


def long_noise(out_dir: str, *, quick: bool = False) -> list[dict]:
  """Dense ReLU vs top-k with 40% of the training labels randomised, trained long enough for
  dense ReLU to fit the noise: test accuracy at each quarter of training, and the accuracy on
  the (noisy) training batches over the last 200 steps (above 0.6 only by fitting the noise: a
  randomised label is always another class), 3 seeds."""
  k = _dense_relu(out_dir, quick)[2]
  seeds = _seeds(quick)
  cols = {}
  for name in ("vit_topk_noisy", "vit_relu_noisy"):
    runs = [_train(name, out_dir, quick, seed=s, top_k=k if "topk" in name else 0,
                   steps=NOISE_LONG_STEPS)[1] for s in seeds]
    evals = [[r for r in rows if "eval/classification/test/accuracy" in r] for rows in runs]
    steps = [r["step"] for r in evals[0]]
    test = [demo_runs.mean_std([e[i]["eval/classification/test/accuracy"] for e in evals],
                               ".1f", 100.0) + "%" for i in range(len(steps))]
    last = max(r["step"] for r in runs[0])
    fit = [statistics.fmean(r["accuracy"] for r in rows
                            if "accuracy" in r and r["step"] > last - 200) for rows in runs]
    cols[name] = (steps, test, demo_runs.mean_std(fit, ".1f", 100.0) + "%")
  (steps, topk_test, topk_fit), (_, relu_test, relu_fit) = (cols["vit_topk_noisy"],
                                                             cols["vit_relu_noisy"])
  head = dict(project="lazy_neuron",
              experiment=f"ViT, 40% labels randomised, {steps[-1]} steps ({len(seeds)} seeds, "
                         f"mean ± std; top-k k = {k})")
  return [
      dict(head, metric="test accuracy at steps " + " / ".join(map(str, steps))
           + ": top-k; ReLU", paper="top-k less sensitive to noisy labels",
           measured=" / ".join(topk_test) + "; " + " / ".join(relu_test)),
      dict(head, metric="accuracy on the noisy training batches, last 200 steps, top-k / ReLU",
           paper="top-k fits less of the noise", measured=f"{topk_fit} / {relu_fit}"),
  ]


if __name__ == "__main__":
  from projects import run_demos
  run_demos.run_mode("the lazy_neuron runs outside the main job (module docstring)",
                     {"size_sweep": size_sweep, "long_noise": long_noise})
