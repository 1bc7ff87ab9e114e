"""The Monet demo in the README's main job: do Monet's experts specialise by domain?

Paper claim (Monet, ICLR 2025): experts specialise, so purging a domain's experts removes that
domain and spares the others, in a model whose quality stays on par with a dense one.
CodeMonet (Tab. 3/15): purging a language's experts costs it 9-31 points of pass@100 and the
other languages 0.6-1.8; MMLU (Tab. 11): Δtarget -0.37 to -5.49 accuracy points, |Δothers| <=
0.51; Tab. 2: Monet-VD 1.4B 0.478 vs LLaMA 1.3B 0.484 0-shot average (shared/specs/experts.md
§1.9). Our measure is a next-byte loss (higher = worse), on a tiny model.

1. Data: 'text_domains', three domains that really differ (stdlib Python, the pydoc prose,
   Stockfish games; ~200 kB each), trained on as one packed byte stream.
2. Models (`configs/domains_demo.py`, 300 steps each, the paper's 1e-3 auxiliary weights):
   Monet-VD with E = 32 per sub-router, seeds 0-2; the dense baseline of equal parameters
   (MonetConfig.dense_width), seeds 0-2; Monet-VD with E = 16 and 64, seed 0 (does a larger E
   specialise more?).
3. For each Monet: routing mass per expert per domain on the training documents; for each
   target domain purge the experts whose mass there is >= 2x the next domain's (paper Tab. 11's
   rule), then the mean CE change on held-out documents (the 'validation' split) of the target
   and of the other domains, beside a control that purges as many random experts.
"""
from __future__ import annotations

import json
import os

import numpy as np

from common.data import tokenizers
from common.tasks import demo_runs
from common.train import config_io, trainer

# Wall minutes in the last serial main job (2026-12-05, Intel VM): `run_demos` starts the
# longest demos first when several run at once.
MAIN_JOB_MINUTES = 5.9

CONFIG = "projects/monet/configs/domains_demo.py"
SEEDS = (0, 1, 2)
SWEEP_EXPERTS = (16, 64)        # E per sub-router beside the seeds' 32, one seed each


def train(out_dir: str, *, quick: bool, variant: str = "vd", seed: int = 0,
          experts: int | None = None) -> tuple[dict, str]:
  """Trains (or reuses) one demo model; returns (final metrics, workdir)."""
  args = f"{'tiny' if quick else 'demo'},{variant},seed={seed}"
  name = f"{variant}_s{seed}"
  if experts:
    args, name = f"{args},experts={experts}", f"{name}_e{experts}"
  config = config_io.load_config(f"{CONFIG}:{args}")
  workdir = os.path.join(out_dir, name)
  return demo_runs.train_or_reuse(config, workdir), workdir


def _restore(workdir: str):
  from common.train import checkpoint  # pylint: disable=g-import-not-at-top
  _, config = checkpoint.read_config(workdir)
  config.mesh.shape = {"data": -1, **{k: 1 for k in config.mesh.shape if k != "data"}}
  run, state, _ = trainer.restore_for_eval(config, workdir)
  return run.model(state), config


def _windows(config, max_windows: int) -> dict:
  from projects.monet.interpret import domains  # pylint: disable=g-import-not-at-top
  return domains.domain_windows(config.data, seq_len=config.data.seq_len, max_windows=max_windows,
                                domains=domains.TEXT_DOMAINS, eval_split="validation")


def analyse(workdir: str, *, max_windows: int, random_controls: int = 2) -> dict:
  """Routing masses, specific experts and the purge rows of a trained Monet run."""
  from projects.monet import interpret  # pylint: disable=g-import-not-at-top
  from projects.monet.interpret import routing  # pylint: disable=g-import-not-at-top
  model, config = _restore(workdir)
  windows = _windows(config, max_windows)
  masses = {d: interpret.routing_mass(model, w["stats"]) for d, w in windows.items()}
  rows = interpret.masking_experiment(model, masses, {d: w["eval"] for d, w in windows.items()},
                                      random_controls=random_controls)
  names = list(masses)
  specific = {d: routing.specific_experts([masses[n] for n in names], t, n=3)
              for t, d in enumerate(names)}
  return dict(model=model, windows=windows, masses=masses, rows=rows, specific=specific,
              tokenizer=tokenizers.from_config(config.data), config=config)


def dense_losses(workdir: str, *, max_windows: int) -> dict[str, float]:
  """Per-domain held-out CE of a trained run (the dense baseline has no experts to purge)."""
  from projects.monet.interpret import masking  # pylint: disable=g-import-not-at-top
  model, config = _restore(workdir)
  return masking.domain_losses(model, {d: w["eval"] for d, w in
                                       _windows(config, max_windows).items()})


def _mean_std(values) -> str:
  v = np.asarray(values, np.float64)
  return f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def run(out_dir: str, *, quick: bool = False) -> list[dict]:
  os.makedirs(out_dir, exist_ok=True)
  windows = 4 if quick else 48
  controls = 1 if quick else 2
  seeds = SEEDS[:1] if quick else SEEDS
  monet, dense = [], []
  for seed in seeds:
    final, workdir = train(out_dir, quick=quick, seed=seed)
    monet.append(dict(final=final, rows=analyse(workdir, max_windows=windows,
                                                random_controls=controls)["rows"]))
    final, workdir = train(out_dir, quick=quick, variant="dense", seed=seed)
    dense.append(dict(final=final, losses=dense_losses(workdir, max_windows=windows)))
  sweep = {}
  for experts in SWEEP_EXPERTS[:1] if quick else SWEEP_EXPERTS:
    final, workdir = train(out_dir, quick=quick, experts=experts)
    sweep[experts] = dict(final=final, rows=analyse(workdir, max_windows=windows,
                                                     random_controls=controls)["rows"])
  with open(os.path.join(out_dir, "purging.json"), "w") as f:
    json.dump(dict(monet=monet, dense=dense, sweep={str(k): v for k, v in sweep.items()}), f,
              indent=1)
  experts = config_io.load_config(f"{CONFIG}:{'tiny' if quick else 'demo'}").model.moe_experts
  return (domain_rows(monet, dense, sweep, len(seeds), experts)
          + chess_rows(out_dir, quick=quick))


def domain_rows(monet: list[dict], dense: list[dict], sweep: dict, n_seeds: int,
                experts: int) -> list[dict]:
  """The results-table rows of the purge experiment (see `run`); `experts`: the seeds' E."""
  row = lambda exp, metric, paper, measured: dict(project="monet", experiment=exp, metric=metric,
                                                  paper=paper, measured=measured)
  setting = (f"tiny Monet-VD (E = {experts}) vs dense, code / prose / chess bytes, "
             f"{n_seeds} seeds")
  ce = lambda runs: [r["final"].get("eval/loss/validation/ce", float("nan")) for r in runs]
  base = lambda runs, d: [r["rows"][0]["base"][d] for r in runs]
  domains = [r["target"] for r in monet[0]["rows"]]
  rows = [row(setting, "validation CE (nats/byte): Monet-VD / dense of equal parameters",
              "on par with dense (Tab. 2, 0-shot avg: Monet-VD 1.4B 0.478, LLaMA 1.3B 0.484)",
              f"{_mean_std(ce(monet))} / {_mean_std(ce(dense))}"),
          row(setting, "held-out CE per domain (" + " / ".join(domains) + "): Monet-VD; dense",
              "n/a", " / ".join(_mean_std(base(monet, d)) for d in domains) + "; "
              + " / ".join(_mean_std([r["losses"][d] for r in dense]) for d in domains))]
  for t, target in enumerate(domains):
    per = [r["rows"][t] for r in monet]
    get = lambda k: [p[k] for p in per]
    rows.append(row(
        f"purge the '{target}' experts (>= 2x rule), {n_seeds} seeds",
        "ΔCE target / others [random purge of as many] (purged % of experts)",
        "large on target, small on others (CodeMonet, Tab. 3: pass@100 -9.1..-30.6 on the "
        "target, -0.6..-1.8 on the others)",
        f"{_mean_std(get('delta_target'))} / {_mean_std(get('delta_others'))} "
        f"[{_mean_std(get('random_delta_target'))} / {_mean_std(get('random_delta_others'))}] "
        f"({100 * np.mean(get('purged_fraction')):.1f}%)"))
  # E sweep: the mean over target domains of Δtarget - Δothers (the purge's selectivity).
  def selectivity(runs):
    return [np.mean([r["delta_target"] - r["delta_others"] for r in run_["rows"]])
            for run_ in runs]
  def purged(runs):
    return np.mean([r["purged_fraction"] for run_ in runs for r in run_["rows"]])
  by_e = {experts: monet, **{e: [v] for e, v in sweep.items()}}
  rows.append(row(
      "Monet-VD, E per sub-router " + " / ".join(str(e) for e in sorted(by_e)),
      "purge selectivity: mean over domains of ΔCE target - ΔCE others (purged % of experts)",
      "not measured (every paper model has E = 512)",
      " / ".join(f"{_mean_std(selectivity(by_e[e]))} ({100 * purged(by_e[e]):.1f}%)"
                 for e in sorted(by_e))))
  return rows


CHESS_CONFIG = "projects/monet/configs/chess.py"
# MoE-X paper, Tab. 1 (8 layers, d 512, Lichess): coverage / reconstruction of Monet's units.
CHESS_PAPER = {"hd": "0.312 / 0.528", "vd": "0.283 / 0.482"}


def chess_rows(out_dir: str, *, quick: bool) -> list[dict]:
  """Monet-HD/VD on the generated chess games, scored like projects/moex's demo models.

  Same data, size, steps and board protocol as the MoE-X demo (configs/chess.py), so these rows
  sit beside its dense / Switch / MoE-X rows in the results table.
  """
  from projects.monet.interpret import board  # pylint: disable=g-import-not-at-top
  rows = []
  for kind in ("hd", "vd"):
    config = config_io.load_config(f"{CHESS_CONFIG}:{'tiny' if quick else 'demo'},{kind}")
    workdir = os.path.join(out_dir, f"chess_{kind}")
    final = demo_runs.train_or_reuse(config, workdir)
    scores = board.evaluate(workdir, num_games=16 if quick else board.NUM_GAMES)
    rows.append(dict(
        project="monet", experiment=f"Monet-{kind.upper()}, generated chess games (MoE-X Tab. 1 "
        f"setting, demo size), layer {int(scores['layer'])}",
        metric="val CE (nats/char); BSP coverage / reconstruction of the expert hidden code",
        paper=f"n/r; {CHESS_PAPER[kind]}",
        measured=f"{final.get('eval/loss/validation/ce', float('nan')):.3f}; "
                 f"{scores['coverage']:.3f} / {scores['reconstruction']:.3f} "
                 f"({int(scores['features'])} units)"))
  return rows


def interpret_contexts(model, windows, expert, decode, *, n: int = 3) -> list[dict]:
  """Top-activating contexts of `expert` (see interpret.routing.top_contexts)."""
  from projects.monet.interpret import routing  # pylint: disable=g-import-not-at-top
  return routing.top_contexts(model, windows, expert, decode, n=n, before=40, after=8)
