"""Batched small matmuls, the tiles of block-sparse attention: XLA:CPU against torch.bmm.

A script, never a test; prints one markdown table. Usage:

    python benchmarks/batched_matmul.py                       # the default shapes (~1 min)
    python benchmarks/batched_matmul.py --torch_python /tmp/torchenv/bin/python
    python benchmarks/batched_matmul.py --shapes 64x128x64x256,16x512x64x256 --repeats 21

Each shape BxMxKxN is a batch of B products [M, K] @ [K, N], float32: jnp.einsum under jit,
timed in three worker processes built and warmed up once, then called in turn (A, B, C, A, ...)
so that the machine's drift hits all of them alike (benchmarks.harness.Served). Each timed call
runs --inner products back to back: a single product of a few ms, timed right after another
process's, measured that process's threads still spinning or its own waking up (on the 2-vCPU
VM either effect moved single products by 1.5-3x).

  jax        XLA on every core this process may use;
  jax 1 cpu  the same, pinned to one core (os.sched_setaffinity before jax is imported);
  torch      torch.bmm with torch.set_num_threads(os.cpu_count()), when torch imports under
             --torch_python (a recipe for such a venv: benchmarks/long_context.py); otherwise
             its columns read '-' and one line says why.

Why it exists: the XLA path of block_sparse_attention computes every tile as one element of
such a batch ([block_q, D] @ [D, n_sel * block_k] and back), and lucidrains' local and routed
attention do the same products with torch.bmm. On the 2-vCPU AMD EPYC VM of session 20,
XLA ran the first three default shapes at 51-78 GFLOP/s, about as fast on one core as on two,
torch.bmm at 130-151, and both a single [4096, 256] @ [256, 256] at ~175 (benchmarks/RESULTS.md,
"The Shaw terms of a causal local window in one skew, and why the rest trails lucidrains'").
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

from benchmarks import harness

# The tiles of benchmarks/long_context.py's routing layer at n = 4096 (2 local + 2 routing heads
# of 64): local scores [128, 64] @ [64, 256] and outputs [128, 256] @ [256, 64] over 2 heads x 32
# query blocks; routing windows of 64 (2 heads x 64 clusters); then two shapes past XLA's
# apparent threshold for splitting one product over cores, and one projection of the layer.
DEFAULT_SHAPES = "64x128x64x256,64x128x256x64,128x64x64x64,16x512x64x256,32x128x64x1024," \
                 "1x4096x256x256"


def parse_shapes(text: str) -> list[tuple[int, int, int, int]]:
  shapes = []
  for item in text.split(","):
    parts = item.strip().lower().split("x")
    if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
      raise SystemExit(f"error: --shapes item {item!r} must be BxMxKxN with positive integers "
                       "(e.g. 64x128x64x256).")
    shapes.append(tuple(int(p) for p in parts))
  return shapes


def _setup(cfg):
  """The worker: one call per shape, named by the shape's text."""
  shapes = parse_shapes(cfg["shapes"])
  inner = cfg["inner"]
  if cfg["side"] == "torch":
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(os.cpu_count())
    calls = {}
    for b, m, k, n in shapes:
      x, y = torch.randn(b, m, k), torch.randn(b, k, n)
      calls[f"{b}x{m}x{k}x{n}"] = lambda x=x, y=y: [torch.bmm(x, y) for _ in range(inner)]
    return dict(threads=torch.get_num_threads()), calls
  if cfg["side"] == "jax 1 cpu":
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  matmul = jax.jit(lambda x, y: jnp.einsum("bmk,bkn->bmn", x, y))
  calls = {}
  for i, (b, m, k, n) in enumerate(shapes):
    kx, ky = jax.random.split(jax.random.key(i))
    x, y = jax.random.normal(kx, (b, m, k)), jax.random.normal(ky, (b, k, n))
    calls[f"{b}x{m}x{k}x{n}"] = lambda x=x, y=y: [jax.block_until_ready(matmul(x, y))
                                                   for _ in range(inner)]
  return dict(cpus=len(os.sched_getaffinity(0))), calls


def _start(side: str, shapes: str, inner: int, python: str | None):
  try:
    return harness.Served(__file__, dict(side=side, shapes=shapes, inner=inner),
                          harness.repo_env(), python=python), None
  except RuntimeError as e:
    return None, str(e)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--shapes", default=DEFAULT_SHAPES, help="comma-separated BxMxKxN")
  p.add_argument("--repeats", type=int, default=15, help="timed calls per shape and side")
  p.add_argument("--inner", type=int, default=20,
                 help="products per timed call (amortises waking the other side's threads)")
  p.add_argument("--torch_python", default=sys.executable,
                 help="interpreter of the torch worker (a venv with torch)")
  args = p.parse_args(argv)
  shapes = parse_shapes(args.shapes)
  sides, notes = {}, []
  for side, python in (("jax", None), ("jax 1 cpu", None), ("torch", args.torch_python)):
    served, error = _start(side, args.shapes, args.inner, python)
    if served is None:
      notes.append(f"{side}: not timed ({error}).")
    else:
      sides[side] = served
  times = {(side, s): [] for side in sides for s in shapes}
  for _ in range(args.repeats):
    for s in shapes:
      for side, served in sides.items():
        times[side, s].append(served.time("x".join(map(str, s))) / args.inner)
  for served in sides.values():
    served.close()

  cols = ("jax", "jax 1 cpu", "torch")
  print(f"### Batched matmuls, float32 ({harness.cpu_model()}, {os.cpu_count()} CPUs; median of "
        f"{args.repeats} calls of {args.inner} products; load {os.getloadavg()[0]:.2f} at the "
        f"end)\n")
  print("| B x [M x K] @ [K x N] | MFLOP | " + " | ".join(f"{c} ms | {c} GFLOP/s" for c in cols)
        + " |")
  print("|---|---:|" + "---:|---:|" * len(cols))
  for s in shapes:
    b, m, k, n = s
    flop = 2 * b * m * k * n
    cells = []
    for c in cols:
      if c in sides:
        t = statistics.median(times[c, s])
        cells += [f"{t * 1e3:.3g}", f"{flop / t / 1e9:.3g}"]
      else:
        cells += ["-", "-"]
    print(f"| {b} x [{m} x {k}] @ [{k} x {n}] | {flop / 1e6:.4g} | " + " | ".join(cells) + " |")
  for note in notes:
    print(f"\n{note}")


if __name__ == "__main__":
  if "--serve" in sys.argv:
    harness.serve(_setup)
  else:
    main()
