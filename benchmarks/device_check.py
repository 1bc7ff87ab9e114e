"""Device check of the sparse-attention kernels: compile, correctness and speed on one GPU.

A prepared check for the session that is lent a GPU (sized for one H200 in under 8 minutes).
Usage:

    python benchmarks/device_check.py                      # on a GPU: the full check (<= 7 min)
    python benchmarks/device_check.py --out check.md       # also write the table to check.md
    python benchmarks/device_check.py --budget_s 200 --only block   # a shorter, partial run
    python benchmarks/device_check.py --dry_run            # on CPU: interpret mode, tiny shapes
    python benchmarks/device_check.py --dtype f32 --block 128 --only 'T=4096 '  # the models' f32

What it does, per case (one table row):

* compiles the op's candidate impl ('pallas_gpu'; 'interpret' in the dry run: the same GPU
  bodies under Pallas' HLO interpreter, see common/kernels/dispatch.py) forward and
  forward+backward at the case's shapes; the compile column is the sum of both;
* checks the output o and the gradients dq, dk, dv (and the Shaw tables' gradients) of the loss
  sum(o * w), w a fixed random f32 cotangent, against impl 'reference' (the dense jnp op). The
  reference builds [B, H, T, T] arrays, so above --ref_max_t the candidate is compared with
  impl 'xla' instead (the gather path, itself checked against the reference by the kernel
  tests); the 'vs' column says which. The error of a tensor x is
  max|x - x_ref| / max(1, max|x_ref|): the max abs error, scaled down only where the
  reference's values exceed 1 (gradients summed over many queries). A case PASSes when every
  error is within TOLERANCES (bf16: 2e-2 for o, 4e-2 for gradients, as the kernel tests);
* times (median of --repeats calls after one warm-up, each waited for with block_until_ready)
  the candidate, impl 'xla', and for the block op cuDNN's dense causal attention
  (jax.nn.dot_product_attention(..., implementation='cudnn', is_causal=True), on the same q, k,
  v; 'n/a' where it cannot run), forward and forward+backward.

Cases on a GPU: block_sparse_attention (causal; each query block lists its --local_blocks
nearest blocks and --random_blocks random earlier ones, duplicates allowed: the op drops them)
and row_sparse_attention (each query lists --row_k distinct keys spread over its causal past,
a top-k-shaped list) at T = 4k, 8k, 16k, 32k and D = 64, 128, bf16 (--dtype f32: f32, checked at
the bf16 tolerances, since on a GPU both sides' dots run as TF32), B = 1, H = 8; then one
case each (T = 4k, D = 128) with packed segment ids, GQA (H_kv = 2) and, for the block op, Shaw
tables ([H, R, D], R = 2 * --max_distance + 1). The smallest cases run first, so a spent budget
drops the largest. --budget_s (default 420 s) stops starting cases when the last case's time
would overrun it, and says which were skipped; --case_budget_s skips a case's remaining stages.

--dry_run: CPU only (even where a GPU is present), impl 'interpret', T = 256, D = 64, block 32,
B = 1, H = 2: both ops in f32, then one bf16 case per op with every feature at once (segment
ids, H_kv = 1, and for the block op Shaw tables); no cuDNN ('n/a'); about 5 s per case.
tests/benchmarks/test_device_check.py runs it.

Throughput convention: TFLOP/s on *useful* FLOPs only. A (query, key) pair is useful when the
op attends it (listed, causal, same segment; counted exactly from the lists, duplicates once).
Forward = 4 * D * pairs summed over B and H (QK^T and PV); forward+backward = 3.5x that
(the backward's five matmuls are 2.5x the forward's two, FlashAttention's convention, as
benchmarks/attention.py). The Shaw terms' extra work is not counted. cuDNN's rate counts its
own useful pairs, the causal T (T + 1) / 2 per head, so compare its time, not its rate, with the
sparse ops. Cells read 'ms (TFLOP/s)'. Timings carry the 1-minute load average of the host.

Exit code: 1 if any case FAILs (an error above tolerance, or the candidate or the reference
failing to run), else 0. Results from a lent GPU go into benchmarks/RESULTS.md, section
"Device check (H200)".
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import os
import platform
import re
import statistics
import sys
import time

import numpy as np

from benchmarks import harness

# jax is imported inside the functions: --dry_run sets JAX_PLATFORMS and XLA_FLAGS before the
# first import.

# Scaled max-abs-error bounds (module docstring); the kernel tests' bf16 / f32 tolerances.
TOLERANCES = {
    "bf16": dict(out=2e-2, grad=4e-2),
    # f32 on a GPU: the reference's dots (XLA's default there) and Triton's run as TF32.
    "f32 (tf32)": dict(out=2e-2, grad=4e-2),
    "f32": dict(out=2e-5, grad=1e-4),
}
FLOPS_PER_PAIR = 4           # QK^T and PV: 2 FLOPs each per (query, key, d)
FWD_BWD_FACTOR = 3.5         # forward + backward (2.5x the forward)
GRAD_NAMES = ("dq", "dk", "dv")


@dataclasses.dataclass(frozen=True)
class Case:
  op: str                    # "block" | "row"
  t: int
  d: int
  dtype: str                 # "bf16" | "f32"
  feature: str = "base"      # "base" or '+'-joined "segments", "gqa", "rel"
  batch: int = 1
  heads: int = 8
  heads_kv: int = 8

  @property
  def name(self) -> str:
    return f"{self.op} T={self.t} D={self.d} {self.dtype} {self.feature}"


@dataclasses.dataclass(frozen=True)
class Settings:
  """What every case of a run shares (from the flags)."""
  candidate: str             # the impl under test
  block: int
  local_blocks: int
  random_blocks: int
  row_k: int
  max_distance: int
  ref_max_t: int
  repeats: int
  case_budget_s: float
  cudnn: bool
  timing: bool


# ----------------------------------------------------------------------------
# Flags and cases.
# ----------------------------------------------------------------------------
def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--dry_run", action="store_true",
                 help="CPU, impl 'interpret', tiny shapes, f32 and bf16, no cuDNN")
  p.add_argument("--out", help="also write the markdown table to this file")
  p.add_argument("--budget_s", type=float, default=420.0,
                 help="stop starting cases once the last case's duration would overrun this")
  p.add_argument("--case_budget_s", type=float, default=90.0,
                 help="skip a case's remaining stages once it has taken this long")
  p.add_argument("--only", default="",
                 help="run only the cases whose name matches this regular expression "
                      "(names as 'block T=4096 D=64 bf16 base')")
  p.add_argument("--repeats", type=int, default=None,
                 help="timed calls per measurement (default 10; dry run 1)")
  p.add_argument("--dtype", default="bf16", choices=("bf16", "f32"),
                 help="dtype of the GPU cases (f32: the models' default; the bodies cut blocks "
                      "into smaller tiles there, block_sparse_gpu.tile_rows)")
  p.add_argument("--skip_timing", action="store_true", help="check correctness only")
  p.add_argument("--block", type=int, default=None, help="block_q = block_k (default 64; dry 32)")
  p.add_argument("--local_blocks", type=int, default=None,
                 help="nearest blocks listed per query block (default 8; dry 2)")
  p.add_argument("--random_blocks", type=int, default=None,
                 help="random earlier blocks listed per query block (default 8; dry 2)")
  p.add_argument("--row_k", type=int, default=None, help="keys per query (default 64; dry 16)")
  p.add_argument("--max_distance", type=int, default=None,
                 help="Shaw tables' max distance M, R = 2M + 1 (default 32; dry 8)")
  p.add_argument("--ref_max_t", type=int, default=8192,
                 help="compare with impl 'reference' up to this T, with 'xla' above")
  args = p.parse_args(argv)
  dry = args.dry_run
  defaults = dict(repeats=(1, 10), block=(32, 64), local_blocks=(2, 8), random_blocks=(2, 8),
                  row_k=(16, 64), max_distance=(8, 32))
  for name, (dry_value, gpu_value) in defaults.items():
    if getattr(args, name) is None:
      setattr(args, name, dry_value if dry else gpu_value)
  return args


def settings(args) -> Settings:
  return Settings(
      candidate="interpret" if args.dry_run else "pallas_gpu", block=args.block,
      local_blocks=args.local_blocks, random_blocks=args.random_blocks, row_k=args.row_k,
      max_distance=args.max_distance, ref_max_t=args.ref_max_t, repeats=args.repeats,
      case_budget_s=args.case_budget_s, cudnn=not args.dry_run, timing=not args.skip_timing)


def all_cases(dry_run: bool, dtype: str = "bf16") -> list[Case]:
  """Smallest first, so that a spent budget drops the largest cases."""
  if dry_run:
    # Every feature in one case per op: the same code paths as the GPU run's separate feature
    # cases at a third of the compiles (compiling is most of a dry run's time).
    return [Case("block", 256, 64, "f32", heads=2, heads_kv=2),
            Case("row", 256, 64, "f32", heads=2, heads_kv=2),
            Case("block", 256, 64, "bf16", "segments+gqa+rel", heads=2, heads_kv=1),
            Case("row", 256, 64, "bf16", "segments+gqa", heads=2, heads_kv=1)]
  sweep = [Case(op, t, d, dtype) for t in (4096, 8192, 16384, 32768)
           for d in (64, 128) for op in ("block", "row")]
  small = dict(t=4096, d=128, dtype=dtype)
  features = [Case("block", feature="segments", **small),
              Case("block", feature="gqa", heads_kv=2, **small),
              Case("block", feature="rel", **small),
              Case("row", feature="segments", **small),
              Case("row", feature="gqa", heads_kv=2, **small)]
  # The T = 4k sweep and the features first: every body variant compiles before the budget can
  # run out.
  return sweep[:4] + features + sweep[4:]


def has(case: Case, feature: str) -> bool:
  return feature in case.feature.split("+")


# ----------------------------------------------------------------------------
# Inputs: random q, k, v, lists, segment ids, tables; the useful pair count.
# ----------------------------------------------------------------------------
def block_lists(rng, b, h, nq, local, n_random):
  """int32 [b, h, nq, local + n_random]: block i lists i, i-1, .., i-local+1 (-1 below 0) and
  n_random blocks drawn from [0, i] (causal; repeats are allowed, the op drops them)."""
  i = np.arange(nq)[:, None]
  near = i - np.arange(local)[None, :]
  near = np.broadcast_to(np.where(near >= 0, near, -1), (b, h, nq, local))
  far = np.floor(rng.random((b, h, nq, n_random), dtype=np.float32) * (i + 1))
  return np.concatenate([near, np.minimum(far, i)], axis=-1).astype(np.int32)


def row_lists(rng, b, h, t, k):
  """int32 [b, h, t, k]: query q lists k distinct keys <= q, key j from [q - (j+1)s + 1, q - js]
  with s = max(1, (q + 1) // k) (spread over the causal past as top-k picks tend to be; disjoint
  ranges, so no duplicates); keys below 0 are -1."""
  q = np.arange(t)[:, None]
  stride = np.maximum(1, (q + 1) // k)
  jitter = np.floor(rng.random((b, h, t, k), dtype=np.float32) * stride).astype(np.int64)
  keys = q - (np.arange(k)[None, :] * stride + np.minimum(jitter, stride - 1))
  return np.where(keys >= 0, keys, -1).astype(np.int32)


def packed_segments(rng, b, t, n_segments=4):
  """int32 [b, t]: n_segments contiguous runs of random lengths (packed sequences)."""
  cuts = np.sort(rng.choice(np.arange(1, t), size=(b, n_segments - 1), replace=False), axis=-1)
  return (np.arange(t)[None, :, None] >= cuts[:, None, :]).sum(-1).astype(np.int32)


def useful_pairs(case: Case, cfg: Settings, lists: dict) -> int:
  """(query, key) pairs the op attends, summed over B and H (see the module docstring)."""
  seg = lists.get("seg")
  seg = None if seg is None else np.asarray(seg)
  if case.op == "row":
    keys = np.asarray(lists["keys"])
    ok = keys >= 0  # row_lists makes each list duplicate-free
    if seg is not None:
      key_seg = np.take_along_axis(seg[:, None, :], np.maximum(keys, 0).reshape(
          case.batch, case.heads, -1), axis=-1).reshape(keys.shape)
      ok &= key_seg == seg[:, None, :, None]
    return int(ok.sum())
  return _block_pairs(case, cfg, np.asarray(lists["idx"]), seg)


def _block_pairs(case, cfg, idx, seg):
  """Causal block op: query q admits keys [start of q's segment, q]; a tile's pairs are the
  overlaps of those intervals with its key block (segments are contiguous runs)."""
  b, t, bs = case.batch, case.t, cfg.block
  nq = t // bs
  q = np.arange(t)
  lo = np.zeros((b, t), np.int64)
  if seg is not None:
    lo = np.stack([np.searchsorted(s, s, side="left") for s in seg])
  k_start = (np.arange(nq) * bs)[None, None, :]
  overlap = (np.minimum(q[None, :, None], k_start + bs - 1) -
             np.maximum(lo[:, :, None], k_start) + 1)                      # [b, t, nK]
  tile = np.maximum(overlap, 0).reshape(b, nq, bs, nq).sum(2)            # [b, nQ, nK]
  listed = np.zeros(idx.shape[:3] + (nq,), bool)
  bi, hi, qi, si = np.nonzero(idx >= 0)
  listed[bi, hi, qi, idx[bi, hi, qi, si]] = True                         # a set: repeats once
  return int((listed * tile[:, None]).sum())


def make_inputs(case: Case, cfg: Settings, seed: int = 0):
  """(q, k, v, tables, lists, w): arrays on the default device; tables () or (rel_k, rel_v);
  lists a dict of the op's non-differentiable inputs; w the loss's f32 cotangent."""
  import jax
  import jax.numpy as jnp

  rng = np.random.default_rng(seed)
  dtype = jnp.bfloat16 if case.dtype == "bf16" else jnp.float32
  keys = jax.random.split(jax.random.key(seed), 6)
  b, h, hk, t, d = case.batch, case.heads, case.heads_kv, case.t, case.d
  q = jax.random.normal(keys[0], (b, h, t, d), dtype)
  k = jax.random.normal(keys[1], (b, hk, t, d), dtype)
  v = jax.random.normal(keys[2], (b, hk, t, d), dtype)
  w = jax.random.normal(keys[3], (b, h, t, d), jnp.float32)
  tables = ()
  if has(case, "rel"):
    shape = (h, 2 * cfg.max_distance + 1, d)
    tables = tuple(0.5 * jax.random.normal(key, shape, dtype) for key in keys[4:6])
  if case.op == "block":
    lists = dict(idx=block_lists(rng, b, h, t // cfg.block, cfg.local_blocks, cfg.random_blocks))
  else:
    lists = dict(keys=row_lists(rng, b, h, t, cfg.row_k))
  lists["seg"] = packed_segments(rng, b, t) if has(case, "segments") else None
  lists = {name: None if x is None else jnp.asarray(x) for name, x in lists.items()}
  return q, k, v, tables, lists, w


# ----------------------------------------------------------------------------
# The functions under test and their compiled forms.
# ----------------------------------------------------------------------------
def op_fn(case: Case, cfg: Settings, impl: str):
  """(q, k, v, tables, lists) -> o of the case's op under `impl`. The lists travel as arguments,
  not closed-over constants: a 32k row list baked into the HLO would slow every compile."""
  from common.kernels.block_sparse_attention import block_sparse_attention
  from common.kernels.row_sparse_attention import row_sparse_attention

  def attend(q, k, v, tables, lists):
    seg = lists["seg"]
    if case.op == "block":
      rel_k, rel_v = tables if tables else (None, None)
      return block_sparse_attention(
          q, k, v, lists["idx"], block_q=cfg.block, block_k=cfg.block, causal=True,
          q_segment_ids=seg, kv_segment_ids=seg, rel_keys=rel_k, rel_values=rel_v, impl=impl)
    return row_sparse_attention(q, k, v, lists["keys"], q_segment_ids=seg,
                                kv_segment_ids=seg, impl=impl)
  return attend


def candidate(case: Case, cfg: Settings, impl: str):
  """The attention under test; the tests wrap this to inject a wrong output."""
  return op_fn(case, cfg, impl)


def cudnn_fn(case: Case, cfg: Settings, impl: str = "cudnn"):
  """Dense causal attention in op_fn's signature; takes [B, T, N, D] q, k, v (transposed once,
  outside the timed call, since that is cuDNN's layout)."""
  del case, cfg
  import jax

  def attend(q, k, v, tables, lists):
    del tables, lists
    return jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation=impl)
  return attend


def with_grads(attend):
  """jit of (q, k, v, tables, lists, w) -> ((loss, o), (dq, dk, dv, d tables)), loss =
  sum(o * w): the forward+backward that is both checked and timed."""
  import jax
  import jax.numpy as jnp

  def loss(q, k, v, tables, lists, w):
    o = attend(q, k, v, tables, lists)
    return jnp.sum(o.astype(jnp.float32) * w), o
  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True))


def forward_only(attend):
  import jax

  def fwd(q, k, v, tables, lists, w):
    del w
    return attend(q, k, v, tables, lists)
  return jax.jit(fwd)


def compile_timed(fn, args):
  """(compiled, seconds to lower and compile)."""
  start = time.perf_counter()
  compiled = fn.lower(*args).compile()
  return compiled, time.perf_counter() - start


def median_s(compiled, args, repeats):
  _, times = harness.timed_calls(compiled, *args, repeats=repeats)
  return statistics.median(times)


# ----------------------------------------------------------------------------
# Errors.
# ----------------------------------------------------------------------------
def scaled_error(got, want) -> float:
  """max|got - want| / max(1, max|want|) in f32; NaN if either holds a NaN."""
  import jax.numpy as jnp

  got, want = jnp.asarray(got, jnp.float32), jnp.asarray(want, jnp.float32)
  err = jnp.max(jnp.abs(got - want)) / jnp.maximum(1.0, jnp.max(jnp.abs(want)))
  return float(err)


def compare(got, want) -> dict:
  """Errors of o, dq, dk, dv and the tables' gradients ('d_rel', the worse of the two)."""
  (_, o), grads = got
  (_, o_ref), grads_ref = want
  errs = {"o": scaled_error(o, o_ref)}
  for name, g, g_ref in zip(GRAD_NAMES, grads[:3], grads_ref[:3]):
    errs[name] = scaled_error(g, g_ref)
  if grads[3]:
    errs["d_rel"] = max(scaled_error(g, g_ref) for g, g_ref in zip(grads[3], grads_ref[3]))
  return errs


def within_tolerance(errs: dict, dtype: str) -> bool:
  tol = TOLERANCES[dtype]
  # `<=` is False for NaN, so a NaN anywhere fails.
  return all(e <= (tol["out"] if name == "o" else tol["grad"]) for name, e in errs.items())


# ----------------------------------------------------------------------------
# One case.
# ----------------------------------------------------------------------------
class Stages:
  """Runs a case's stages in order while its --case_budget_s lasts; notes what it skipped."""

  def __init__(self, budget_s):
    self.start, self.budget_s, self.notes = time.perf_counter(), budget_s, []

  def spent(self) -> float:
    return time.perf_counter() - self.start

  def open(self, what) -> bool:
    if self.spent() <= self.budget_s:
      return True
    self.notes.append(f"{what} skipped: --case_budget_s {self.budget_s:g} spent")
    return False


def check(case, cfg, args, row):
  """Compiles the candidate and compares it with the reference (or xla). Returns the compiled
  forward+backward functions worth reusing for timing, {'candidate': .., 'xla': ..}."""
  truth = "reference" if case.t <= cfg.ref_max_t else "xla"
  row["vs"] = truth
  compiled = {}
  try:
    compiled["candidate"], row["compile_s"] = compile_timed(
        with_grads(candidate(case, cfg, cfg.candidate)), args)
    got = compiled["candidate"](*args)
  except Exception as e:  # noqa: BLE001  (a kernel that does not compile is this row's FAIL)
    row["check"], row["error"] = "FAIL", f"candidate failed: {_short(e)}"
    return {}
  try:
    truth_fb, _ = compile_timed(with_grads(op_fn(case, cfg, truth)), args)
    want = truth_fb(*args)
  except Exception as e:  # noqa: BLE001
    row["check"], row["error"] = "FAIL", f"{truth} failed: {_short(e)}"
    return compiled
  if truth == "xla":
    compiled["xla"] = truth_fb
  row["errors"] = compare(got, want)
  tol = "f32 (tf32)" if case.dtype == "f32" and cfg.candidate == "pallas_gpu" else case.dtype
  row["check"] = "PASS" if within_tolerance(row["errors"], tol) else "FAIL"
  return compiled


def time_impls(case, cfg, args, row, stages, fb):
  """Fills row['times'][(impl, pass)] = seconds, or a string saying why there is none."""
  times = row["times"]

  def measure(label, make, fb_compiled, fn_args):
    for mode in ("fwd", "fwd+bwd"):
      if not stages.open(f"{label} {mode}"):
        times[(label, mode)] = "skipped"
        continue
      try:
        if mode == "fwd+bwd" and fb_compiled is not None:
          compiled = fb_compiled
        else:
          wrap = forward_only if mode == "fwd" else with_grads
          compiled, c_s = compile_timed(wrap(make()), fn_args)
          if label == "candidate":
            row["compile_s"] = row.get("compile_s", 0.0) + c_s
        times[(label, mode)] = median_s(compiled, fn_args, cfg.repeats)
      except Exception as e:  # noqa: BLE001  (reported in the cell, not a FAIL)
        times[(label, mode)] = "n/a"
        stages.notes.append(f"{label} {mode}: {_short(e)}")

  # No compiled candidate: it failed to compile, and the row already FAILs.
  if "candidate" in fb:
    measure("candidate", lambda: candidate(case, cfg, cfg.candidate), fb["candidate"], args)
  measure("xla", lambda: op_fn(case, cfg, "xla"), fb.get("xla"), args)
  if case.op != "block":
    return
  if not cfg.cudnn:
    times[("cudnn", "fwd")] = times[("cudnn", "fwd+bwd")] = "n/a"
    return
  q, k, v, tables, lists, w = args
  btnd = tuple(x.transpose(0, 2, 1, 3) for x in (q, k, v, w))
  measure("cudnn", lambda: cudnn_fn(case, cfg), None, btnd[:3] + ((), {}, btnd[3]))


def run_case(case: Case, cfg: Settings) -> dict:
  """One table row: compile, check, time."""
  import jax

  stages = Stages(cfg.case_budget_s)
  row = dict(case=case, times={}, errors={}, check="FAIL")
  args = make_inputs(case, cfg)
  row["pairs"] = useful_pairs(case, cfg, args[4])
  fb = check(case, cfg, args, row)
  if cfg.timing:
    time_impls(case, cfg, args, row, stages, fb)
  row["notes"] = stages.notes
  row["seconds"] = stages.spent()
  row["load"] = os.getloadavg()[0]
  del args, fb
  # Drop this case's executables and traces before the next, larger one.
  jax.clear_caches()
  gc.collect()
  return row


def _short(e: Exception) -> str:
  text = str(e).strip().splitlines()
  return f"{type(e).__name__}: {text[0][:120] if text else ''}"


# ----------------------------------------------------------------------------
# Table.
# ----------------------------------------------------------------------------
def flops(case: Case, pairs: int, mode: str) -> float:
  per_pass = FLOPS_PER_PAIR * case.d * pairs
  return per_pass * (FWD_BWD_FACTOR if mode == "fwd+bwd" else 1.0)


def _time_cell(value, fl) -> str:
  if value is None:
    return "-"
  if isinstance(value, str):
    return value
  return f"{value * 1e3:.3g} ({fl / value / 1e12:.3g})"


def _err_cell(errs, name) -> str:
  return f"{errs[name]:.1e}" if name in errs else "-"


COLUMNS = ("op", "feature", "T", "D", "dtype", "H/H_kv", "keys/query", "compile (s)", "vs",
           "err o", "err dq", "err dk", "err dv", "err d_rel", "check",
           "cand fwd", "cand fwd+bwd", "xla fwd", "xla fwd+bwd", "cudnn fwd", "cudnn fwd+bwd",
           "load", "note")


def table_row(row: dict) -> str:
  c = row["case"]
  pairs, errs, times = row["pairs"], row["errors"], row["times"]
  dense = c.batch * c.heads * c.t * (c.t + 1) // 2  # cuDNN's causal pairs
  cells = [c.op, c.feature, str(c.t), str(c.d), c.dtype, f"{c.heads}/{c.heads_kv}",
           f"{pairs / (c.batch * c.heads * c.t):.0f}",
           f"{row['compile_s']:.1f}" if "compile_s" in row else "-", row.get("vs", "-")]
  cells += [_err_cell(errs, n) for n in ("o",) + GRAD_NAMES + ("d_rel",)]
  cells.append(row["check"])
  for label, n in (("candidate", pairs), ("xla", pairs), ("cudnn", dense)):
    for mode in ("fwd", "fwd+bwd"):
      cells.append(_time_cell(times.get((label, mode)), flops(c, n, mode)))
  cells.append(f"{row['load']:.2f}")
  cells.append("; ".join(filter(None, [row.get("error")] + row["notes"])))
  return "| " + " | ".join(cells) + " |"


def render(args, cfg, rows, skipped, elapsed, machine) -> str:
  argv = " ".join(sys.argv[1:]) if args.argv is None else " ".join(args.argv)
  passed = sum(r["check"] == "PASS" for r in rows)
  tol = "; ".join(f"{k}: o {v['out']:g}, gradients {v['grad']:g}" for k, v in TOLERANCES.items())
  lines = [
      f"Run {datetime.date.today().isoformat()} by `python benchmarks/device_check.py"
      f"{(' ' + argv) if argv else ''}` ({elapsed:.0f} s). Machine: {machine}.", "",
      f"Candidate impl '{cfg.candidate}'. Block op: causal, block_q = block_k = {cfg.block}, "
      f"{cfg.local_blocks} nearest + {cfg.random_blocks} random earlier blocks per query block. "
      f"Row op: {cfg.row_k} distinct causal keys per query. B = 1; segments: 4 packed runs; gqa: "
      f"H_kv < H; rel: Shaw rel_keys and rel_values [H, {2 * cfg.max_distance + 1}, D]. "
      f"keys/query: useful pairs / (B H T). Errors: max|x - x_ref| / max(1, max|x_ref|) against "
      f"'vs' (reference up to T = {cfg.ref_max_t}, xla above); tolerances {tol}. Times: "
      f"median of {cfg.repeats} after a warm-up, cells 'ms (TFLOP/s on useful FLOPs: 4 D pairs "
      f"forward, x{FWD_BWD_FACTOR:g} forward+backward)'; cudnn: dense causal attention, its rate "
      f"on its own causal pairs. load: 1-min load average after the row.", "",
      "| " + " | ".join(COLUMNS) + " |",
      "|" + "|".join("---:" if col in ("T", "D", "keys/query", "compile (s)", "load") else "---"
                     for col in COLUMNS) + "|"]
  lines += [table_row(r) for r in rows]
  lines.append("")
  if skipped:
    lines += [f"Skipped {len(skipped)} case(s), --budget_s {args.budget_s:g} would be exceeded: "
              + ", ".join(c.name for c in skipped) + ".", ""]
  lines.append(f"{passed} of {len(rows)} cases PASS"
               + ("." if passed == len(rows) else "; FAIL: "
                  + ", ".join(r["case"].name for r in rows if r["check"] != "PASS") + "."))
  return "\n".join(lines) + "\n"


def machine_text(dev) -> str:
  import jax
  import jaxlib

  return (f"{dev.device_kind} ({dev.platform}), {os.cpu_count()} vCPU "
          f"{harness.cpu_model()}, Python {platform.python_version()}, jax {jax.__version__} / "
          f"jaxlib {jaxlib.__version__}")


# ----------------------------------------------------------------------------
# Driver.
# ----------------------------------------------------------------------------
def run(args, cfg, cases):
  """(rows, skipped cases, seconds): cases in order until the budget would be overrun."""
  started, last, rows = time.perf_counter(), 0.0, []
  for i, case in enumerate(cases):
    elapsed = time.perf_counter() - started
    if elapsed + last > args.budget_s:
      print(f"budget: {elapsed:.0f} s spent, last case took {last:.0f} s; skipping "
            f"{len(cases) - i} case(s)", file=sys.stderr, flush=True)
      return rows, cases[i:], time.perf_counter() - started
    row = run_case(case, cfg)
    last = row["seconds"]
    print(f"  {case.name}: {row['check']} {row['errors']} ({last:.1f} s)", file=sys.stderr,
          flush=True)
    rows.append(row)
  return rows, [], time.perf_counter() - started


def _dry_run_environment():
  """The dry run stays on the CPU even where a GPU is present (and leaves its memory alone), and
  skips LLVM's optimisation passes: at tiny shapes compiling is most of the time."""
  if "jax" in sys.modules:
    return
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_backend_optimization_level" not in flags:
    os.environ["XLA_FLAGS"] = flags + " --xla_backend_optimization_level=0"


def main(argv=None) -> int:
  args = parse_args(argv)
  args.argv = argv
  if args.dry_run:
    _dry_run_environment()
  import jax

  cfg = settings(args)
  cases = [c for c in all_cases(args.dry_run, args.dtype) if re.search(args.only, c.name)]
  device = jax.devices("cpu")[0] if args.dry_run else jax.devices()[0]
  if not args.dry_run and jax.default_backend() != "gpu":
    print(f"warning: backend is {jax.default_backend()}, not gpu; 'pallas_gpu' will fail "
          f"(use --dry_run on CPU)", file=sys.stderr)
  with jax.default_device(device):
    rows, skipped, elapsed = run(args, cfg, cases)
    text = render(args, cfg, rows, skipped, elapsed, machine_text(device))
  print(text)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text)
  return 0 if rows and all(r["check"] == "PASS" for r in rows) else 1


if __name__ == "__main__":
  sys.exit(main())
