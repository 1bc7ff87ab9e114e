"""The MoE-X demo in the README's main job: ground-truth features, then chess.

Superposition (configs/superposition.py, common/tasks/superposition.py): sparse synthetic
features superposed in a low-dimensional input, whose truth is known, so the monosemanticity
of every FFN kind's hidden units is measured directly (coverage, per-unit F1, L0):
  kinds        dense GELU, ReLU, GEGLU, SoLU, Switch and MoE-X at equal active parameters
               (hidden 64: dense H = 64, GEGLU 42 x 3 matrices, 8 experts x 32 top-2), and
               Tab. 3's two ablations (ReLU experts only, sparsity router only), equal steps,
               3 seeds each;
  Monet        Monet's router and VD / HD experts in the same task (projects/monet/configs/
               superposition.py: 32 experts per sub-router of m = 8, 2 routing heads, k = 4, so
               256 up units and at most 64 active; scored code: HD 256 units, VD 512), 3 seeds
               each; run from its config file, so no project imports the other. Its router is
               16x MoE-X's (16,384 parameters).
  Fig. 3       coverage against the hidden-size multiplier: dense ReLU at H = 64 / 128 / 256,
               MoE-X with 4 / 8 / 16 / 32 experts of 32 units (total 128 .. 1024, active 64);
               one seed each beyond the kinds' runs (SWEEP_SEEDS: in the 3-seed runs of
               2026-12-04 a sweep point's seed-to-seed std was <= 0.0032 coverage, small
               beside the sweep's large steps (H 128 -> 256: +0.034, 16 -> 32 experts:
               +0.022), and the main job's 90 minutes had no room for the other two);
  Fig. 4       coverage against L0: the Spearman rank correlation of coverage with the
               measured L0 over all the runs above (each row also gives its L0).

Chess: five runs of `configs/chess.py` (demo size; 'tiny' in quick mode), each an ordinary
trainer run in <out>/<name> (reused when finished):
  dense        dense_gelu (GPT-2 MLP, hidden 256)
  switch       GELU experts, learned router (8 x 128, top-2: equal active parameters)
  moex         ReLU experts, sparsity router, from scratch
  moex_up      MoE-X up-cycled from `dense` (projects/moex/upcycle.py, split mode: the dense
               256 units become 2 slices of 128), then trained as many steps again. It has seen
               twice the tokens of the others, as in the paper's Tab. 4.
  dense_cont   Tab. 4's control: `dense` trained as many steps again (train.init_from, fresh
               optimizer and schedule, as the up-cycled run), so up-cycling meets equal compute.
Each row gives validation CE (nats/character) and the board-state coverage / reconstruction of
the middle layer's FFN hidden units (projects/moex/board_eval.py) beside paper Tab. 1 / Tab. 4.
The paper's models are 8x512 on 16M Lichess games for 600k steps; ours are 4x64 on a few
hundred engine-generated games for minutes, so only the ordering can be compared.

`chess_long` (`python -m projects.moex.demo chess_long OUT`, ~40 min on 2 CPU cores; the main
job has no time left for it): Tab. 1's three from-scratch kinds (dense, Switch, MoE-X) at
context 512 (`configs/chess.py:long`: every game whole, its positions scored across it, on all
320 validation games), 3 seeds each, mean ± std.
"""
from __future__ import annotations

import os

import numpy as np

from common.tasks import demo_runs
from common.train import config_io
from projects.moex import upcycle

# Wall minutes in the last serial main job (2026-12-05, Intel VM): `run_demos` starts the
# longest demos first when several run at once.
MAIN_JOB_MINUTES = 10.0

CONFIG = "projects/moex/configs/chess.py"
TOY_CONFIG = "projects/moex/configs/superposition.py"
MONET_TOY_CONFIG = "projects/monet/configs/superposition.py"
MONET_KINDS = {"monet_vd": "vd", "monet_hd": "hd"}   # kind -> that config's variant
TOY_KINDS = {"dense_gelu": "dense GELU", "dense_relu": "dense ReLU", "dense_geglu": "dense GEGLU",
             "dense_solu": "dense SoLU", "switch": "Switch (GELU, learned router)",
             "moex": "MoE-X (ReLU, sparsity router)",
             # Tab. 3's ablations: which of MoE-X's two changes moves the scores.
             "moex_relu_only": "ReLU experts, learned router",
             "moex_router_only": "GELU experts, sparsity router",
             "monet_vd": "Monet VD (relu2 experts, BatchNorm-threshold router)",
             "monet_hd": "Monet HD (relu2 experts, BatchNorm-threshold router)"}
# Fig. 3: (kind, variant args) -> label; the 8-expert MoE-X and H = 64 ReLU are TOY_KINDS runs.
TOY_SWEEP = {("dense_relu", "hidden=128"): "dense ReLU, H = 128",
             ("dense_relu", "hidden=256"): "dense ReLU, H = 256",
             ("moex", "experts=4"): "MoE-X, 4 experts",
             ("moex", "experts=16"): "MoE-X, 16 experts",
             ("moex", "experts=32"): "MoE-X, 32 experts"}
SEEDS = (0, 1, 2)
SWEEP_SEEDS = SEEDS[:1]
TOY_METRICS = (("coverage", "coverage of the true features", ".3f"),
               ("unit_f1", "per-unit best F1 (monosemanticity)", ".3f"),
               ("l0", "L0 (nonzero hidden units / example)", ".1f"),
               ("mse", "reconstruction MSE (x 1e3)", ".2f"))
# name -> (config kind, label, paper (val loss, coverage, reconstruction))
RUNS = {
    "dense": ("dense_gelu", "GELU (GPT-2) dense", ("0.213", "0.356", "0.608")),
    "switch": ("switch", "Switch (GELU, learned router)", ("0.212", "0.424", "0.734")),
    "moex": ("moex", "MoE-X from scratch", ("n/r", "0.398", "0.657")),
    "moex_up": ("moex", "MoE-X up-cycled from dense", ("0.211", "0.428", "0.840")),
    # Tab. 4's control: the dense model trained as many more steps as the up-cycled MoE-X got,
    # so up-cycling is compared at equal compute.
    "dense_cont": ("dense_gelu", "GELU dense, continued training (compute of up-cycled)",
                   ("n/r", "0.377", "0.674")),
}


def train_all(out_dir: str, *, quick: bool) -> dict[str, dict]:
  size = "tiny" if quick else "demo"
  finals = {}
  for name, (kind, _, _) in RUNS.items():
    config = config_io.load_config(f"{CONFIG}:{size},{kind}")
    workdir = os.path.join(out_dir, name)
    if name == "moex_up":
      init = os.path.join(out_dir, "moex_up_init")
      demo_runs.export_once(
          init, lambda: upcycle.upcycle_run(os.path.join(out_dir, "dense"), config, init))
      config.train.init_from = init
    elif name == "dense_cont":
      config.train.init_from = os.path.join(out_dir, "dense")   # fresh optimizer, as up-cycling
    finals[name] = demo_runs.train_or_reuse(config, workdir)
  return finals


def _toy(out_dir: str, kind: str, extra: str, seed: int, quick: bool) -> dict:
  size = "tiny" if quick else "demo"
  if kind in MONET_KINDS:
    spec = f"{MONET_TOY_CONFIG}:{size},{MONET_KINDS[kind]}"
  else:
    spec = f"{TOY_CONFIG}:" + ",".join(a for a in (size, kind, extra) if a)
  config = config_io.load_config(spec)
  config.seed = seed
  name = "_".join(a for a in (kind, extra.replace("=", ""), f"seed{seed}") if a)
  final = demo_runs.train_or_reuse(config, os.path.join(out_dir, "superposition", name))
  get = lambda k: final.get(f"eval/features/{k}", float("nan"))
  return {"coverage": get("coverage"), "unit_f1": get("unit_f1"), "l0": get("l0"),
          "units": get("units"), "mse": 1e3 * final.get("eval/loss/validation/mse", float("nan"))}


def _rank_correlation(a, b) -> float:
  ra, rb = (np.argsort(np.argsort(np.asarray(v))) for v in (a, b))
  return float(np.corrcoef(ra, rb)[0, 1])


def toy_rows(out_dir: str, *, quick: bool) -> list[dict]:
  """The superposition rows (module doc): kinds, the Fig. 3 sweep and the Fig. 4 ordering."""
  seeds = SEEDS[:1] if quick else SEEDS
  runs = {(k, ""): [_toy(out_dir, k, "", s, quick) for s in seeds] for k in TOY_KINDS}
  if not quick:
    runs.update({key: [_toy(out_dir, *key, s, quick) for s in SWEEP_SEEDS] for key in TOY_SWEEP})
  label = {**{(k, ""): v for k, v in TOY_KINDS.items()}, **TOY_SWEEP}
  exp = "superposition (F = 128 in d = 32, active hidden 64), " + (
      "smoke" if quick else f"{len(seeds)} seeds, mean ± std (Fig. 3 sweep: {len(SWEEP_SEEDS)})")
  rows = []
  for key, results in runs.items():
    units = int(results[0]["units"])
    for metric, text, fmt in TOY_METRICS:
      rows.append(dict(project="moex", experiment=f"{exp}, {label[key]} ({units} units)",
                       metric=text, paper="n/a (no such experiment)",
                       measured=demo_runs.mean_std([r[metric] for r in results], fmt)))
  # Fig. 4: does coverage fall as L0 grows? Over every run above (seeds pooled).
  l0 = [r["l0"] for rs in runs.values() for r in rs]
  cov = [r["coverage"] for rs in runs.values() for r in rs]
  if len(l0) > 2:
    rows.append(dict(project="moex", experiment=f"{exp}, all runs (Fig. 4)",
                     metric="Spearman rank correlation of coverage with L0",
                     paper="negative (Fig. 4: coverage falls as L0 grows)",
                     measured=f"{_rank_correlation(l0, cov):+.2f} over {len(l0)} runs"))
  return rows


# (final-metrics key, row metric, paper column: index into RUNS' paper triple or None for n/r)
CHESS_METRICS = (("loss/validation/ce", "validation CE (nats/char)", 0),
                 ("board_state/coverage", "BSP coverage", 1),
                 ("board_state/coverage_occurring", "BSP coverage, over the BSPs that occur", None),
                 ("board_state/reconstruction", "BSP reconstruction", 2))
LONG_RUNS = ("dense", "switch", "moex")   # Tab. 1's from-scratch kinds (RUNS names)


def _chess_rows(experiment: str, name: str, finals: list[dict]) -> list[dict]:
  """One row per CHESS_METRICS entry for RUNS[name], mean ± std over the runs in `finals`."""
  _, label, paper = RUNS[name]
  return [dict(project="moex", experiment=f"{experiment}, {label}", metric=metric,
               paper="n/r" if col is None else paper[col],
               measured=demo_runs.mean_std([f.get(f"eval/{key}", float("nan")) for f in finals]))
          for key, metric, col in CHESS_METRICS]


def run(out_dir: str, *, quick: bool = False) -> list[dict]:
  os.makedirs(out_dir, exist_ok=True)
  rows = toy_rows(out_dir, quick=quick)
  finals = train_all(out_dir, quick=quick)
  for name in RUNS:
    rows += _chess_rows("chess", name, [finals[name]])
  return rows


def chess_long(out_dir: str, *, quick: bool = False) -> list[dict]:
  """LONG_RUNS at context 512, 3 seeds each (module docstring; 'tiny', one seed, when quick)."""
  size, seeds = ("tiny", SEEDS[:1]) if quick else ("long", SEEDS)
  rows = []
  for name in LONG_RUNS:
    finals = []
    for seed in seeds:
      config = config_io.load_config(f"{CONFIG}:{size},{RUNS[name][0]}")
      config.seed = seed
      finals.append(demo_runs.train_or_reuse(config, os.path.join(out_dir, f"{name}_seed{seed}")))
    rows += _chess_rows(f"chess, context {config.data.seq_len}, {len(seeds)} seed(s)", name,
                        finals)
  return rows


if __name__ == "__main__":
  from projects import run_demos
  run_demos.run_mode("MoE-X chess at context 512, outside the main job (module docstring)",
                     {"chess_long": chess_long})
