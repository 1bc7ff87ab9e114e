"""The Monet demo in the README's main job: train a tiny Monet, then purge domain experts.

1. Train `configs/stdlib_demo.py:demo` (an ordinary main.py run in <out>/train; reused if done).
2. Cut four stdlib domains (interpret/domains.py: codecs, async, email, gui) into 128-byte
   windows, split by file into a statistics half and an evaluation half.
3. Routing mass per expert per domain on the statistics half; for each target domain purge the
   experts whose mass there is >= 2x the next domain's (paper Tab. 11's rule), and measure the
   mean CE change on the evaluation half of the target vs the other domains, beside a control
   that purges as many random experts.

Paper (CodeMonet, Tab. 3/15): purging a language's experts costs that language 9-31 points of
pass@100 and the others 0.6-1.8; (MMLU, Tab. 11) Δtarget -0.37 to -5.49 accuracy points,
|Δothers| <= 0.51. Our measure is a loss (higher = worse), on a tiny byte-level model.
"""
from __future__ import annotations

import json
import os

from common.data import tokenizers
from common.tasks import demo_runs
from common.train import config_io, trainer

CONFIG = "projects/monet/configs/stdlib_demo.py"


def train(out_dir: str, *, quick: bool) -> tuple[dict, str]:
  """Trains (or reuses) the demo model; returns (final metrics, workdir)."""
  config = config_io.load_config(f"{CONFIG}:{'tiny' if quick else 'demo'}")
  workdir = os.path.join(out_dir, "train")
  return demo_runs.train_or_reuse(config, workdir), workdir


def analyse(workdir: str, *, max_windows: int, random_controls: int = 2) -> dict:
  """Routing masses, specific experts and the masking rows of a trained demo run."""
  from projects.monet import interpret  # pylint: disable=g-import-not-at-top
  from projects.monet.interpret import routing  # pylint: disable=g-import-not-at-top
  from common.train import checkpoint  # pylint: disable=g-import-not-at-top
  _, config = checkpoint.read_config(workdir)
  config.mesh.shape = {"data": -1, **{k: 1 for k in config.mesh.shape if k != "data"}}
  run, state, _ = trainer.restore_for_eval(config, workdir)
  model = run.model(state)
  windows = interpret.domain_windows(config.data, seq_len=config.data.seq_len,
                                     max_windows=max_windows)
  masses = {d: interpret.routing_mass(model, w["stats"]) for d, w in windows.items()}
  rows = interpret.masking_experiment(model, masses, {d: w["eval"] for d, w in windows.items()},
                                      random_controls=random_controls)
  names = list(masses)
  specific = {d: routing.specific_experts([masses[n] for n in names], t, n=3)
              for t, d in enumerate(names)}
  return dict(model=model, windows=windows, masses=masses, rows=rows, specific=specific,
              tokenizer=tokenizers.from_config(config.data), config=config)


def run(out_dir: str, *, quick: bool = False) -> list[dict]:
  os.makedirs(out_dir, exist_ok=True)
  final, workdir = train(out_dir, quick=quick)
  result = analyse(workdir, max_windows=4 if quick else 48, random_controls=1 if quick else 2)
  with open(os.path.join(out_dir, "masking.json"), "w") as f:
    json.dump(result["rows"], f, indent=1)
  row = lambda exp, metric, paper, measured: dict(project="monet", experiment=exp, metric=metric,
                                                  paper=paper, measured=measured)
  ce = final.get("eval/loss/validation/ce", float("nan"))
  rows = [
      row("tiny Monet-VD, stdlib bytes", "validation CE (nats/byte) / ppl", "n/a (tiny CPU model)",
          f"{ce:.3f} / {final.get('eval/loss/validation/ppl', float('nan')):.2f}"),
      row("tiny Monet-VD, stdlib bytes", "experts selected per token and head (train) / k",
          "~k (BN threshold Phi^-1(1-k/E))",
          f"{final.get('train/routing/selected', float('nan')):.2f} / "
          f"{result['config'].model.moe_topk}"),
      row("tiny Monet-VD, stdlib bytes", "expert utilisation in a batch (train)",
          "near-uniform usage (uniformity 6.28 vs log 512 = 6.24)",
          f"{100 * final.get('train/routing/utilisation', float('nan')):.0f}%"),
  ]
  for r in result["rows"]:
    rows.append(row(
        f"purge '{r['target']}' experts (>= 2x rule)",
        "ΔCE target / others [random control] (purged % of experts, % of target mass)",
        "large on target, small on others (CodeMonet: -9..-31 vs -0.6..-1.8 pass@100)",
        f"{r['delta_target']:+.3f} / {r['delta_others']:+.3f} "
        f"[{r.get('random_delta_target', float('nan')):+.3f} / "
        f"{r.get('random_delta_others', float('nan')):+.3f}] "
        f"({100 * r['purged_fraction']:.1f}%, {100 * r['purged_mass_target']:.0f}%)"))
  return rows + chess_rows(out_dir, quick=quick)


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
