"""The SEA demo in the README's main job: SEA's claim at CPU scale, on long-range recall.

Issue 16 item 3. The paper (Table 2) distils SEA from a pretrained dense OPT and compares it with a
Performer trained the same number of steps. Here, at CPU scale (configs/recall.py):

1. Train a dense OPT teacher on the associative-recall stream (common.data.recall) until its
   attention means something: answer CE well below chance ln 8 (the answers' unigram entropy),
   far answers included (<out>/teacher, reused if done).
2. Export it into step 0 of each student run (frozen teacher + student with the teacher's dense
   weights, export_opt.py) and distil, for equal steps, three students whose only difference
   is the attention of the layer: 'sea' (the official layer), 'performer' (SEA's estimator
   backbone alone: the paper's Performer row) and 'local' (a causal window of at most k keys:
   the same key budget as SEA's, k = 64). One teacher; three student seeds (0, 1, 2) per kind,
   the seed varying the student's fresh parts (SEA's estimator, the Performer projection) and
   the data order (<out>/<kind>_s<seed>).
3. Evaluate on the 128 fixed validation sequences: answer CE and accuracy near / far from the
   store, the attention KL and the teacher's attention mass the student reads (task.py).
4. Dynamic k (paper §4.3): each SEA student evaluated at k in {32, 64, 128} without retraining
   (dynamic_k.py; <out>/dynamic_k_sea_s<seed>.json).

Paper numbers beside ours (../shared/specs/paper_facts.md §5.1, §5.3; confidence medium): Table
2, Wikitext-2, every method trained 10k steps: OPT-125m ppl 29.2 vanilla, 26.0 SEA; SEA 47.7%
below Performer (so Performer ~49.8). Dynamic k (§4.3, Fig. 6; medium-high): OPT models trained
with k = 32, 64, 128 all beat vanilla's 29.2 when k is raised after training.

`quick=True`: the tiny settings (T = 128, k = 16), one seed, 2 steps per run.
`distill_long` (`python -m projects.sea.demo distill_long OUT [--steps 1000]`, ~40 min on 2 CPU
cores; the main job has no time left for it): the same teacher and rows with the students
distilled 10x longer, to see whether SEA closes its gap to the teacher where Performer and the
local window do not.
`train_both` / `stdlib_rows`: the former byte-level demo (configs/stdlib_demo.py), which the
notebook uses.
"""
from __future__ import annotations

import json
import math
import os
import statistics

from common.tasks import demo_runs
from common.train import config_io
from projects.sea import dynamic_k, export_opt

# Wall minutes in the last serial main job (2026-12-05, Intel VM): `run_demos` starts the
# longest demos first when several run at once.
MAIN_JOB_MINUTES = 7.1

CONFIG = "projects/sea/configs/recall.py"
STDLIB_CONFIG = "projects/sea/configs/stdlib_demo.py"
KINDS = ("sea", "performer", "local")
SEEDS = (0, 1, 2)
DYNAMIC_K = {"demo": (32, 64, 128), "tiny": (8, 16, 32)}
EVAL = "eval/recall/validation/"
LOSS = "eval/loss/validation/"

PAPER = "Tab. 2, Wikitext-2, 10k steps; medium"
PAPER_TEACHER = f"vanilla OPT-125m ppl 29.2 ({PAPER})"
PAPER_STUDENT = {
    "sea": f"SEA ppl 26.0 vs vanilla 29.2: 3.2 below its teacher ({PAPER})",
    "performer": f"Performer ppl ~49.8 (SEA's 26.0 is 47.7% lower): ~20.6 above vanilla ({PAPER})",
    "local": "not in the paper (Tab. 2 baselines: Reformer, Performer)",
}
PAPER_DYNAMIC_K = ("§4.3 / Fig. 6: OPT trained at k = 32, 64 or 128 beats vanilla 29.2 when k "
                   "is raised after training (medium-high)")


def _size(quick: bool) -> str:
  return "tiny" if quick else "demo"


def train_teacher(out_dir: str, *, quick: bool) -> dict:
  cfg = config_io.load_config(f"{CONFIG}:teacher,{_size(quick)}")
  return demo_runs.train_or_reuse(cfg, os.path.join(out_dir, "teacher"))


def student_config(kind: str, seed: int, *, quick: bool, steps: int | None = None):
  """configs/recall.py's student; `steps` overrides its distillation steps."""
  return config_io.load_config(f"{CONFIG}:student,{_size(quick)},student_attention={kind},"
                               f"seed={seed}" + (f",steps={steps}" if steps else ""))


def train_student(out_dir: str, kind: str, seed: int, *, quick: bool, steps: int | None = None
                  ) -> tuple[dict, object, str]:
  """Export the teacher into step 0, then distil; (final metrics, config, workdir)."""
  cfg = student_config(kind, seed, quick=quick, steps=steps)
  name = f"{kind}_s{seed}"
  workdir = os.path.join(out_dir, name)
  init = os.path.join(out_dir, f"init_{name}")
  if not os.path.exists(os.path.join(workdir, "final_metrics.json")):
    demo_runs.export_once(init, lambda: export_opt.export_checkpoint(
        cfg, init, dense_workdir=os.path.join(out_dir, "teacher")))
    cfg.train.init_from = init
  return demo_runs.train_or_reuse(cfg, workdir), cfg, workdir


def dynamic_k_or_reuse(out_dir: str, seed: int, cfg, workdir: str, ks) -> dict[int, dict]:
  path = os.path.join(out_dir, f"dynamic_k_sea_s{seed}.json")
  if os.path.exists(path):
    with open(path) as f:
      saved = {int(k): v for k, v in json.load(f).items()}
    if set(saved) == set(ks):
      return saved
  results = dynamic_k.evaluate_at_k(cfg, workdir, ks)
  with open(path, "w") as f:
    json.dump({str(k): v for k, v in results.items()}, f, indent=1, sort_keys=True)
  return results


def _pm(values, digits: int = 3, scale: float = 1.0) -> str:
  return demo_runs.mean_std(values, f".{digits}f", scale)


def run(out_dir: str, *, quick: bool = False, student_steps: int | None = None) -> list[dict]:
  """The demo's rows; `student_steps` distils longer than the config's 100 (`distill_long`)."""
  os.makedirs(out_dir, exist_ok=True)
  size = _size(quick)
  seeds = SEEDS[:1] if quick else SEEDS
  teacher = train_teacher(out_dir, quick=quick)
  # Seed-major, so that an interrupted main job already holds every kind at seed 0.
  students = {kind: [] for kind in KINDS}
  for s in seeds:
    for kind in KINDS:
      students[kind].append(train_student(out_dir, kind, s, quick=quick, steps=student_steps))
  ks = DYNAMIC_K[size]
  dyn = [dynamic_k_or_reuse(out_dir, s, cfg, wd, ks)
         for s, (_, cfg, wd) in zip(seeds, students["sea"])]

  m = students["sea"][0][1]
  d = m.data
  chance = math.log(d.num_values)
  exp = (f"recall T={d.seq_len}, 1-layer OPT d{m.model.hidden_size}, k={m.model.sea_k}, "
         f"T_M={m.model.sea_predictor_length}, {m.train.num_steps} distil steps, "
         f"{len(seeds)} seed(s)") if not quick else "smoke (tiny recall, T=128)"
  row = lambda metric, paper, measured: dict(project="sea", experiment=exp, metric=metric,  # noqa: E731
                                             paper=paper, measured=measured)
  get = lambda r, k: r.get(k, float("nan"))  # noqa: E731
  bucket = {"far": f">= {d.far_min} back", "near": f"<= {d.near_max} back"}
  rows = []
  for b in ("far", "near"):
    rows.append(row(
        f"dense teacher ({m.model.num_layers} layer): answer CE, {b} ({bucket[b]}), nats",
        PAPER_TEACHER if b == "far" else "n/a",
        f"{get(teacher, EVAL + f'recall_{b}_ce'):.3f} (acc "
        f"{100 * get(teacher, EVAL + f'recall_{b}_accuracy'):.1f}%; chance ln "
        f"{d.num_values} = {chance:.3f})"))
  for kind in KINDS:
    finals = [f for f, _, _ in students[kind]]
    for b in ("far", "near"):
      ce = [get(f, EVAL + f"recall_{b}_ce") for f in finals]
      acc = [get(f, EVAL + f"recall_{b}_accuracy") for f in finals]
      gap = [c - get(teacher, EVAL + f"recall_{b}_ce") for c in ce]
      rows.append(row(
          f"{kind} student: answer CE, {b}, mean ± std over seeds; gap to the teacher",
          PAPER_STUDENT[kind] if b == "far" else "n/a",
          f"{_pm(ce)} (gap {_pm(gap)} nats, "
          f"answer ppl x{math.exp(statistics.fmean(gap)):.2f}; "
          f"acc {_pm(acc, 1, 100)}%)"))
    kl = [get(f, LOSS + "attention_kl") for f in finals]
    cov = [get(f, LOSS + "teacher_attention_covered") for f in finals]
    rows.append(row(f"{kind} student: KL(teacher attention || student attention), nats/row "
                    "(student probs floored at 1e-6)", "n/a (not reported)", _pm(kl)))
    rows.append(row(f"{kind} student: teacher attention mass on the keys it reads",
                    "n/a (not reported)",
                    _pm(cov) + (" (every causal key, by construction)"
                                if kind == "performer" else "")))
  trained_k = m.model.sea_k
  for k in ks:
    cell = lambda b: [r[k][f"recall/validation/recall_{b}"] for r in dyn]  # noqa: E731
    rows.append(row(
        f"dynamic k: SEA student trained at k={trained_k}, evaluated at k={k} (no retraining): "
        "answer CE far / near, mean ± std over seeds", PAPER_DYNAMIC_K,
        f"far {_pm(cell('far_ce'))} (acc {_pm(cell('far_accuracy'), 1, 100)}%) / near "
        f"{_pm(cell('near_ce'))} (acc {_pm(cell('near_accuracy'), 1, 100)}%)"))
  return rows


def distill_long(out_dir: str, *, quick: bool = False, steps: int = 1000) -> list[dict]:
  """`run` with every student distilled `steps` steps (module docstring)."""
  return run(out_dir, quick=quick, student_steps=steps)


# The former demo (byte-level pystdlib text, strided bits/byte); the notebook still runs it.

def train_both(out_dir: str, *, quick: bool, teacher_steps: int | None = None,
               student_steps: int | None = None) -> tuple[dict, dict, str]:
  """stdlib demo: teacher run, export, student run; (teacher final, student final, workdir)."""
  size = _size(quick)
  steps = lambda n: f",steps={n}" if n else ""  # noqa: E731
  teacher_cfg = config_io.load_config(f"{STDLIB_CONFIG}:teacher,{size}{steps(teacher_steps)}")
  teacher = demo_runs.train_or_reuse(teacher_cfg, os.path.join(out_dir, "teacher"))
  student_cfg = config_io.load_config(f"{STDLIB_CONFIG}:student,{size}{steps(student_steps)}")
  init = os.path.join(out_dir, "init")
  if not os.path.exists(os.path.join(out_dir, "student", "final_metrics.json")):
    demo_runs.export_once(init, lambda: export_opt.export_checkpoint(
        student_cfg, init, dense_workdir=os.path.join(out_dir, "teacher")))
    student_cfg.train.init_from = init
  student = demo_runs.train_or_reuse(student_cfg, os.path.join(out_dir, "student"))
  return teacher, student, os.path.join(out_dir, "student")


def stdlib_rows(out_dir: str, *, quick: bool = False) -> list[dict]:
  """The former demo's rows (strided bits/byte of teacher and SEA student)."""
  os.makedirs(out_dir, exist_ok=True)
  teacher, student, _ = train_both(out_dir, quick=quick)
  m = config_io.load_config(f"{STDLIB_CONFIG}:student,{_size(quick)}").model
  get = lambda d, k: d.get(k, float("nan"))  # noqa: E731
  key = "eval/strided/validation/bits_per_token"
  exp = "tiny OPT (2 layers, d 64), stdlib bytes, T=2048" if not quick else "smoke (T=64)"
  row = lambda metric, paper, measured: dict(project="sea", experiment=exp, metric=metric,  # noqa: E731
                                             paper=paper, measured=measured)
  ev = "eval/loss/validation/" if "eval/loss/validation/ce" in student else "train/"
  return [
      row("dense teacher, strided validation bits/byte", PAPER_TEACHER,
          f"{get(teacher, key):.3f}"),
      row(f"SEA student (k={m.sea_k}, T_M={m.sea_predictor_length}), strided bits/byte",
          PAPER_STUDENT["sea"], f"{get(student, key):.3f}"),
      row("KL(teacher attention || SEA estimate), mean over layers (nats/row)",
          "n/a (trained to 0 by L_est)", f"{get(student, ev + 'sea/estimate_kl'):.3f}"),
      row("fraction of causal keys kept by the SEA mask", f"~k/(i+1) per query (k={m.sea_k})",
          f"{100 * get(student, ev + 'sea/kept_key_fraction'):.1f}%"),
  ]


if __name__ == "__main__":
  from projects import run_demos
  run_demos.run_mode("the SEA demo with longer distillation, outside the main job (module "
                     "docstring)", {"distill_long": distill_long}, steps=True)
