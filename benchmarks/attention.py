"""Speed and memory of the sparse-attention ops; writes benchmarks/RESULTS_attention.md.

A script, never a test. Usage:

    python benchmarks/attention.py                 # full CPU run (~10 min, 2 vCPU)
    python benchmarks/attention.py --quick         # T = 1k, 4k only
    python benchmarks/attention.py --sizes 1024,4096,16384 --repeats 3

CPU section: dense attention (jax.nn.dot_product_attention, XLA) vs the
block-sparse XLA path vs the row-sparse XLA path, forward and forward+backward,
at a fixed number of selected keys per query (block-sparse: n_sel blocks of
block_k keys; row-sparse: K keys). Each (method, T, mode) runs in a fresh
subprocess so that its peak RSS (resource.getrusage) is its own; the table
also gives XLA's compiled temp-buffer bytes (memory_analysis), which is
deterministic. Dense is skipped where its T x T buffers would exceed
--dense-max-gib. The log-log slope of time and temp bytes against T is fitted
per method.

GPU section (only when jax.default_backend() == "gpu"): Pallas GPU body vs
XLA path vs jax.nn.dot_product_attention(implementation="cudnn"), bf16,
T = 4k..64k, D = 64/128, in TFLOP/s on useful FLOPs (4 * T * keys_per_query *
D * B * H for the forward; x 2.5 more for the backward). Without a GPU the
section says so and holds no numbers.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import time

from benchmarks import harness

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS_attention.md"
METHODS = ("dense", "block_sparse_xla", "row_sparse_xla")


def _parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--sizes", default="1024,4096,16384,65536",
                 help="comma-separated sequence lengths T (Tq = Tk)")
  p.add_argument("--quick", action="store_true", help="T = 1024,4096 only")
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--heads", type=int, default=2)
  p.add_argument("--head-dim", type=int, default=64)
  p.add_argument("--block", type=int, default=64, help="block_q = block_k")
  p.add_argument("--n-sel", type=int, default=8,
                 help="selected kv blocks per query block")
  p.add_argument("--row-k", type=int, default=64,
                 help="keys per query for row-sparse")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--dense-max-gib", type=float, default=6.0,
                 help="skip dense when its estimated peak exceeds this")
  p.add_argument("--gpu-sizes", default="4096,16384,65536")
  p.add_argument("--no-write", action="store_true",
                 help="print the table without writing RESULTS_attention.md")
  p.add_argument("--worker", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.quick:
    args.sizes = "1024,4096"
  return args


# ----------------------------------------------------------------------------
# One measurement (runs inside a worker process).
# ----------------------------------------------------------------------------
def _inputs(cfg, dtype):
  import jax
  import jax.numpy as jnp

  b, h, t, d = cfg["batch"], cfg["heads"], cfg["t"], cfg["head_dim"]
  kq, kk, kv, ki = jax.random.split(jax.random.key(0), 4)
  q = jax.random.normal(kq, (b, h, t, d), dtype)
  k = jax.random.normal(kk, (b, h, t, d), dtype)
  v = jax.random.normal(kv, (b, h, t, d), dtype)
  nb = t // cfg["block"]
  n_sel = min(cfg["n_sel"], nb)
  # Distinct random blocks per query block: the top n_sel of random scores.
  scores = jax.random.uniform(ki, (b, h, nb, nb))
  idx = jax.lax.top_k(scores, n_sel)[1].astype(jnp.int32)
  rows = jax.random.randint(ki, (b, h, t, cfg["row_k"]), 0, t, jnp.int32)
  return q, k, v, idx, rows


def _attention_fn(method, cfg, impl="xla"):
  import jax
  import jax.numpy as jnp

  from common.kernels.block_sparse_attention import block_sparse_attention
  from common.kernels.row_sparse_attention import row_sparse_attention

  if method == "dense":
    def fn(q, k, v, idx, rows):
      del idx, rows
      o = jax.nn.dot_product_attention(
          *(x.transpose(0, 2, 1, 3) for x in (q, k, v)), implementation=impl)
      return o.transpose(0, 2, 1, 3)
  elif method.startswith("block_sparse"):
    def fn(q, k, v, idx, rows):
      del rows
      return block_sparse_attention(q, k, v, idx, block_q=cfg["block"],
                                    block_k=cfg["block"], impl=impl)
  else:
    def fn(q, k, v, idx, rows):
      del idx
      return row_sparse_attention(q, k, v, rows, impl=impl)
  del jnp
  return fn


def measure(cfg):
  """Compiles and times one (method, T, mode); returns a dict of numbers."""
  import jax
  import jax.numpy as jnp

  dtype = jnp.bfloat16 if cfg.get("dtype") == "bf16" else jnp.float32
  q, k, v, idx, rows = _inputs(cfg, dtype)
  attn = _attention_fn(cfg["method"], cfg, cfg.get("impl", "xla"))
  if cfg["mode"] == "fwd":
    fn = jax.jit(attn)
  else:
    def loss(q, k, v, idx, rows):
      return jnp.sum(attn(q, k, v, idx, rows).astype(jnp.float32))
    fn = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
  args = (q, k, v, idx, rows)
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  _, times = harness.timed_calls(compiled, *args, repeats=cfg["repeats"])
  return dict(
      best_s=min(times), median_s=sorted(times)[len(times) // 2],
      compile_s=compile_s,
      temp_bytes=getattr(mem, "temp_size_in_bytes", None) if mem else None,
      peak_rss_bytes=harness.peak_rss_bytes())


def _run_worker(cfg):
  """Runs `measure` in a fresh process (own peak RSS); {'error': ...} if it failed."""
  env = dict(os.environ)
  env.setdefault("JAX_PLATFORMS", "cpu")
  return harness.run_worker(__file__, cfg, env)


# ----------------------------------------------------------------------------
# Tables.
# ----------------------------------------------------------------------------
def _machine():
  import jax
  import jaxlib

  load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
  return (f"{os.cpu_count()} vCPU {harness.cpu_model()}, {platform.system()} "
          f"{platform.machine()}, Python {platform.python_version()}, "
          f"jax {jax.__version__} / jaxlib {jaxlib.__version__} "
          f"(backend {jax.default_backend()}); host load average at start "
          f"{load:.1f}")


def cpu_section(args):
  sizes = [int(s) for s in args.sizes.split(",")]
  base = dict(batch=args.batch, heads=args.heads, head_dim=args.head_dim,
              block=args.block, n_sel=args.n_sel, row_k=args.row_k)
  rows, fits = [], {}
  for method in METHODS:
    for mode in ("fwd", "fwd+bwd"):
      series = []
      for t in sizes:
        # Peak of XLA's dense attention, measured here: ~2 (fwd) and ~8
        # (fwd+bwd) f32 [B, H, T, T] buffers.
        dense_bytes = ((2 if mode == "fwd" else 8) * args.batch * args.heads *
                       t * t * 4)
        if method == "dense" and dense_bytes > args.dense_max_gib * 2**30:
          rows.append((method, mode, t, None,
                       f"skipped: needs ~{harness.fmt_bytes(dense_bytes)} "
                       f"(> --dense-max-gib {args.dense_max_gib:g})"))
          continue
        cfg = dict(base, method=method, mode=mode, t=t,
                   repeats=args.repeats if t <= 16384 else max(1, args.repeats - 1))
        res = _run_worker(cfg)
        print(f"  {method:17s} {mode:7s} T={t:6d} {res}", file=sys.stderr)
        rows.append((method, mode, t, res, res.get("error")))
        if "error" not in res:
          series.append((t, res))
      if series:
        fits[(method, mode)] = (
            harness.loglog_slope([t for t, _ in series], [r["best_s"] for _, r in series]),
            harness.loglog_slope([t for t, _ in series], [r["temp_bytes"] for _, r in series]))
  keys_bs = args.n_sel * args.block
  lines = [
      f"Shapes: B={args.batch}, H={args.heads}, D={args.head_dim}, float32, "
      f"Tq = Tk = T, non-causal. Block-sparse: block_q = block_k = "
      f"{args.block}, n_sel = {args.n_sel} random distinct blocks per query "
      f"block ({keys_bs} keys per query). Row-sparse: K = {args.row_k} random "
      f"keys per query. Dense: jax.nn.dot_product_attention "
      f"(implementation='xla'), all T keys. Time: best of "
      f"{args.repeats} runs after one warm-up (host is shared, so best is the "
      f"least-disturbed estimate); temp: XLA compiled temp buffers "
      f"(memory_analysis); RSS: peak resident set of the measuring process "
      f"(includes ~0.3 GiB of JAX runtime and the inputs).",
      "",
      "| method | pass | T | time (ms) | temp | peak RSS | compile (s) | note |",
      "|---|---|---:|---:|---:|---:|---:|---|",
  ]
  for method, mode, t, res, note in rows:
    if res is None or "error" in res:
      lines.append(f"| {method} | {mode} | {t} | - | - | - | - | {note} |")
    else:
      lines.append(
          f"| {method} | {mode} | {t} | {res['best_s'] * 1e3:.1f} | "
          f"{harness.fmt_bytes(res['temp_bytes'])} | "
          f"{harness.fmt_bytes(res['peak_rss_bytes'])} | {res['compile_s']:.1f} | |")
  lines += ["", "Log-log slope against T (1 = linear, 2 = quadratic), over "
            "the measured sizes. The sparse paths' temp memory is a scan "
            "chunk bounded by the XLA paths' CHUNK_BYTES (4-16 MiB) plus O(T * D) buffers, "
            "hence slopes below 1 until the O(T) part dominates:", "",
            "| method | pass | time slope | temp-memory slope |",
            "|---|---|---:|---:|"]
  for (method, mode), (ts, ms) in fits.items():
    f = lambda x: "-" if x is None else f"{x:.2f}"
    lines.append(f"| {method} | {mode} | {f(ts)} | {f(ms)} |")
  return "\n".join(lines)


def gpu_section(args):
  import jax

  if jax.default_backend() != "gpu":
    return "not measured: no GPU lent in this session."
  lines = ["| method | D | T | pass | time (ms) | TFLOP/s (useful) |",
           "|---|---:|---:|---|---:|---:|"]
  block, n_sel = 128, args.n_sel
  for d in (64, 128):
    for t in [int(s) for s in args.gpu_sizes.split(",")]:
      for method, impl in (("block_sparse", "pallas_gpu"),
                           ("block_sparse", "xla"), ("dense", "cudnn")):
        for mode in ("fwd", "fwd+bwd"):
          cfg = dict(batch=1, heads=8, head_dim=d, block=block, n_sel=n_sel,
                     row_k=args.row_k, method=method, impl=impl, mode=mode,
                     t=t, repeats=args.repeats, dtype="bf16")
          try:
            res = measure(cfg)
          except Exception as e:  # noqa: BLE001  (report, keep going)
            lines.append(f"| {method} ({impl}) | {d} | {t} | {mode} | - | "
                         f"failed: {type(e).__name__} |")
            continue
          keys = t if method == "dense" else min(n_sel, t // block) * block
          flops = 4 * 8 * t * keys * d * (3.5 if mode == "fwd+bwd" else 1.0)
          lines.append(
              f"| {method} ({impl}) | {d} | {t} | {mode} | "
              f"{res['best_s'] * 1e3:.2f} | {flops / res['best_s'] / 1e12:.1f} |")
  return "\n".join(lines)


def main(argv=None):
  args = _parse_args(argv)
  if args.worker:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    print(json.dumps(measure(json.loads(args.worker))))
    return
  started = time.perf_counter()
  header = _machine()
  cpu = cpu_section(args)
  gpu = gpu_section(args)
  elapsed = time.perf_counter() - started
  text = "\n".join([
      "## Attention kernels", "",
      f"Measured {datetime.date.today().isoformat()} by "
      f"`{' '.join(['python benchmarks/attention.py'] + sys.argv[1:])}` "
      f"({elapsed / 60:.1f} min).", "",
      f"Machine: {header}.", "",
      "### CPU: dense vs XLA sparse paths", "", cpu, "",
      "### GPU: Pallas vs XLA path vs cuDNN", "", gpu, ""])
  print(text)
  if not args.no_write:
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
  main()
