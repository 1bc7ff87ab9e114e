"""FLOPs of the SViT and BiFormer presets at 224, counted by XLA, beside the papers' numbers.

A script, never a test:

    python benchmarks/flops.py                      # every preset below, batch 1 @ 224
    python benchmarks/flops.py --models SViT-S --size 384

The count is XLA's HLO cost analysis of the jitted eval forward (`jit(...).lower(...)
.cost_analysis()`, before any backend compile, so it takes seconds and no memory), at batch 1,
1000 classes. The papers' numbers are fvcore counts, which count one multiply-add as ONE FLOP and
skip softmax, top-k and means; XLA counts a multiply-add as two and counts every elementwise op.
So XLA / 2 should sit slightly above the paper's figure; the 'XLA / 2 - paper' column is that
excess (within 0.03 G for every preset since the erf GELU; RESULTS.md says why it was 3.5-6%).
The paper column and the fvcore re-run of the official code come from
../shared/specs/vision.md (reported: the papers and READMEs; fvcore [RUN]: a run of the
official code with fvcore, same file).

BiFormer on CPU lowers its routed attention through the XLA gather path of
common.kernels.block_sparse_attention ('auto'), whose gathers add no FLOPs beyond the attended
blocks; the official code gathers the same blocks.
"""
from __future__ import annotations

import argparse
import datetime
import pathlib

import jax
import jax.numpy as jnp
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding)
from benchmarks.vision import build_preset

# GFLOPs @224 (fvcore, 1 MAC = 1 FLOP): (reported by the paper / README, fvcore re-run of the
# official code), ../shared/specs/vision.md.
PAPER = {
    "SViT-S": (4.4, 4.37), "SViT-B": (9.9, 9.87), "SViT-L": (15.6, 15.60),
    "BiFormer-T": (2.2, 2.228), "BiFormer-S": (4.5, 4.487), "BiFormer-B": (9.8, 9.795),
    "BiFormer-STL": (4.6, 4.590),
}
RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS_flops.md"


def xla_flops(name: str, size: int) -> tuple[float, int]:
  """(XLA-counted FLOPs of one eval forward at batch 1, parameter count)."""
  graphdef, state = nnx.split(build_preset(name))

  def forward(state, x):
    return nnx.merge(graphdef, state)(x, train=False)

  x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  cost = jax.jit(forward).lower(state, x).cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  params = sum(v.size for v in jax.tree.leaves(nnx.state(nnx.merge(graphdef, state), nnx.Param)))
  return float(cost["flops"]), int(params)


def table(rows: list[dict], size: int) -> str:
  lines = [
      f"FLOPs per image at {size}x{size}, batch 1, eval forward; XLA's HLO cost analysis (jax "
      f"{jax.__version__}), {datetime.date.today().isoformat()}. Command: `python "
      f"benchmarks/flops.py`.", "",
      "| model | params | XLA GFLOPs | XLA / 2 | paper (fvcore) | fvcore re-run of official "
      "code | XLA / 2 - paper |",
      "|---|---|---|---|---|---|---|"]
  for r in rows:
    paper, rerun = PAPER.get(r["model"], (None, None)) if size == 224 else (None, None)
    half = r["gflops"] / 2
    lines.append(
        f"| {r['model']} | {r['params']:,} | {r['gflops']:.2f} | {half:.2f} | "
        f"{paper if paper is not None else '-'} | {rerun if rerun is not None else '-'} | "
        f"{'%+.2f' % (half - paper) if paper is not None else '-'} |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--models", default=",".join(PAPER))
  p.add_argument("--size", type=int, default=224)
  args = p.parse_args(argv)
  rows = []
  for name in args.models.split(","):
    flops, params = xla_flops(name, args.size)
    rows.append(dict(model=name, gflops=flops / 1e9, params=params))
    print(rows[-1], flush=True)
  text = table(rows, args.size)
  RESULTS.write_text("# FLOPs (benchmarks/flops.py)\n\n" + text)
  print(text)


if __name__ == "__main__":
  main()
