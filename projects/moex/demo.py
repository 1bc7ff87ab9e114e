"""The MoE-X demo in the README's main job: dense vs Switch vs MoE-X on generated chess games.

Five runs of `configs/chess.py` (demo size; 'tiny' in quick mode), each an ordinary trainer run in
<out>/<name> (reused when finished):
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
"""
from __future__ import annotations

import os

from common.tasks import demo_runs
from common.train import config_io
from projects.moex import upcycle

CONFIG = "projects/moex/configs/chess.py"
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


def run(out_dir: str, *, quick: bool = False) -> list[dict]:
  os.makedirs(out_dir, exist_ok=True)
  finals = train_all(out_dir, quick=quick)
  rows = []
  for name, (_, label, paper) in RUNS.items():
    f = finals[name]
    get = lambda k: f.get(f"eval/{k}", float("nan"))
    measured = (get("loss/validation/ce"), get("board_state/coverage"),
                get("board_state/reconstruction"))
    for metric, p, v in zip(("validation CE (nats/char)", "BSP coverage", "BSP reconstruction"),
                            paper, measured):
      rows.append(dict(project="moex", experiment=f"chess, {label}", metric=metric, paper=p,
                       measured=f"{v:.3f}"))
  return rows
