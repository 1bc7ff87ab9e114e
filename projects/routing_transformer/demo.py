"""The Routing Transformer demo in the README's main job: routing vs local-only vs dense.

Trains three byte-level LMs on the Python standard library's sources at n = 2048 with the same
width, depth, head count, optimiser and number of steps (configs/stdlib_demo.py:demo): 2 local +
2 routing heads, 4 local heads, and 4 heads of full causal attention. All three use the
'sinusoidal' variant: NO Shaw relative positions (the official text setting), a sinusoidal
timing signal instead; when the demo was set up the relative terms ran on the windowed jnp path,
where the dense baseline alone took ~30 s/step on 2 CPU cores (they now run inside
common.kernels.block_sparse_attention too; not re-timed). Each run is an ordinary
`main.py` run with its own workdir (resumable, re-evaluable with `python -m common.eval`).
Rows: validation bits/byte and perplexity per byte at equal steps, the clustering loss, and the
median train-step time of each variant (the logged intervals after the first, which holds the
compile).
"""
from __future__ import annotations

import os
import statistics

from common.tasks import demo_runs
from common.train import config_io, metrics as metrics_lib

CONFIG = "projects/routing_transformer/configs/stdlib_demo.py"
VARIANTS = ("routing", "local_only", "dense")
METRIC = "eval/loss/validation/bits_per_byte"
POSITIONS = "sinusoidal"  # see the module docstring: no Shaw terms, every head on the kernel


def _config(variant: str, quick: bool):
  return config_io.load_config(f"{CONFIG}:{'tiny' if quick else 'demo'},{variant},{POSITIONS}")


def _step_time(workdir: str) -> float:
  """Median seconds per train step over the logged intervals, the first (compile) left out."""
  rows = metrics_lib.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  times = [r["step_time_s"] for r in rows if "step_time_s" in r]
  return statistics.median(times[1:] or times)


def _train(variant: str, out_dir: str, quick: bool) -> tuple[dict, float]:
  workdir = os.path.join(out_dir, variant)
  final = demo_runs.train_or_reuse(_config(variant, quick), workdir)
  return final, _step_time(workdir)


def run(out_dir: str, *, quick: bool = False) -> list[dict]:
  os.makedirs(out_dir, exist_ok=True)
  res, step_s = {}, {}
  for v in VARIANTS:
    res[v], step_s[v] = _train(v, out_dir, quick)
  steps = res["routing"]["step"]
  seq_len = _config("routing", quick).data.seq_len
  exp = f"byte LM, stdlib text, n={seq_len}, {steps} steps, sinusoidal positions (no Shaw)"
  row = lambda exp, metric, paper, measured: dict(
      project="routing_transformer", experiment=exp, metric=metric, paper=paper,
      measured=measured)
  bpb = {v: res[v][METRIC] for v in VARIANTS}
  return [
      row(exp, "val bits/byte routing / local / dense",
          "routing better (WT103 15.8 vs 18.3 ppl)",
          " / ".join(f"{bpb[v]:.3f}" for v in VARIANTS)),
      row(exp, "val perplexity/byte routing / local / dense",
          "", " / ".join(f"{2 ** bpb[v]:.2f}" for v in VARIANTS)),
      row(exp, "train step s (median) routing / local / dense", "",
          " / ".join(f"{step_s[v]:.2f}" for v in VARIANTS)),
      row("routing heads", "clustering loss (2*beta*e_loss summed over layers), val",
          "beta 1e-4", f"{res['routing']['eval/loss/validation/clustering_loss']:.3g}"),
  ]


if __name__ == "__main__":
  import sys
  for r in run(sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_demo", quick="--quick" in sys.argv):
    print(r)
