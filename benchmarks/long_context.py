"""Long-context attention layers: time and memory against sequence length n.

A script, never a test; prints markdown tables and writes nothing. Usage:

    python benchmarks/long_context.py                     # n = 1k..16k on CPU (~13 min, 2 vCPU)
    python benchmarks/long_context.py --quick             # n = 256, 512 (smoke check, a few min)
    python benchmarks/long_context.py --layers block,block_gqa,block_seg,row,row_gqa,row_seg
    python benchmarks/long_context.py --lengths 1024,4096 --layers dense,routing --repeats 5
    python benchmarks/long_context.py --device gpu        # whatever GPU jax sees
    python benchmarks/long_context.py --torch_python /tmp/torchenv/bin/python   # + lucidrains

The PyTorch reference (routing_torch) runs in its own worker process under --torch_python
(default: this interpreter), so it can live in a venv of its own that has no jax:

    python -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch routing-transformer
    # (CPU-only torch: first /tmp/torchenv/bin/pip install torch
    #  --index-url https://download.pytorch.org/whl/cpu; where that index is out of reach but
    #  pip's find-links hold a CPU wheel, name it: pip install 'torch==2.13.0+cpu' ...)
    python benchmarks/long_context.py --torch_python /tmp/torchenv/bin/python

That worker imports only this file, benchmarks/harness.py (no jax at import) and torch /
routing_transformer. Where they do not import under that interpreter, one line says so and the
routing_torch rows are left out; the run goes on and exits 0.

Layers, each a full self-attention layer x [1, n, hidden] -> [1, n, hidden] with its q/k/v and
output projections, causal, float32, batch 1, H heads of D (default 4 x 64, hidden = H * D):

  dense    common.layers.attention.MultiHeadAttention(causal=True): einsum softmax over the full
           n x n logits (what this repo's layers use; O(n^2) time and memory).
  routing  projects.routing_transformer.attention.RoutingSelfAttention built from the model fields
           of configs/stdlib_demo.py (relative positions on, attention_impl 'auto', local blocks of
           128 with a 128 flange), with H and D overridden. Since issue 16 the Shaw relative terms
           run inside common.kernels.block_sparse_attention (rel_keys / rel_values), so every head
           takes the kernel (the XLA path on CPU); the routing rows of RESULTS.md dated before
           that were measured on the official windowed jnp path; H_r of the H heads are routing heads
           (default 2, the config's split), the rest local. Clusters K and window w follow n
           (--routing-rule): 'sqrt' (default) K = 2^floor(log2(n)/2), w = n / K, i.e. K ~ w ~
           sqrt(n) as the paper's O(n^1.5) analysis; 'official' w = min(512, n), K = n / w as the
           released hparam sets (wikitext103_4k K=8, enwik8_8k/pg19_8k K=16, all w=512). Eval
           mode (no k-means EMA update); the clustering loss is part of the forward.
  routing_nopos  the same layer with the Shaw relative terms off (local_relative and
           routing_relative False; not the official text setting): the like-for-like row beside
           routing_torch, whose heads carry no Shaw terms (below).
  sea      projects.sea.attention.SEAAttention (the OPT settings of the official scripts/opt.py:
           k = 64, T_M = 256, nbf = 8) wrapped here with OPT-style q/k/v/out projections (biases,
           q * D^-1/2); attention_impl 'auto' (common.kernels.row_sparse_attention, the chunked
           XLA path on CPU) by default, --attention_impl to change it ('official': the dense
           keep mask; or a kernel impl).
  routing_torch  (only when `torch` and lucidrains' `routing_transformer` import under
           --torch_python) its
           `routing_transformer.routing_transformer.SelfAttention`, the attention block of
           `RoutingTransformer`, at the same shapes: dim = hidden, heads = H, dim_head = D,
           local_attn_heads = H - H_r, window_size = w (its K = max_seq_len / w, the same K),
           local_attn_window_size = 128 (its local attention looks one window back: our block 128
           + flange 128), causal, shared_qk (as the official share_qk). Position terms differ:
           its local heads use rotary embeddings (local-attention's rel_pos_emb default) and its
           routing heads none (no pos_emb is passed to the block), where ours use Shaw relative
           positions in both. Eval mode. torch.set_num_threads(os.cpu_count()), the number of
           threads XLA's CPU client uses.

Kernel rows: the common.kernels op alone (no projections), q [1, H, n, D], k and v
[1, H_kv, n, D] (random normal, float32), impl --kernel-impl ('auto': the XLA path on CPU);
fwd+bwd is the gradient of mean(o^2) in q, k, v. Every variant of an op lists the same keys, so
a variant's row over the plain row at the same n is the cost of that feature alone (a table of
these ratios follows the fitted exponents):

  block      block_sparse_attention, causal, blocks of 128 (block_q = block_k): query block i
             lists the band i, i-1, i-2, i-3 and the strided blocks i-8, i-16, i-24, i-32
             (absent ones -1): 8 blocks, <= 1024 keys per query, so linear in n; MHA (H_kv = H).
  block_gqa  the same with H_kv = --kv-heads (default 1: MQA at H = 4).
  block_seg  the same with q/kv segment ids of --segments (default 4) equal documents per
             sequence (the lists still cross documents: the masking is what is measured).
  row, row_gqa, row_seg  row_sparse_attention, the same three settings: query t lists keys
             t-0..t-31 and t-32, t-64, ..., t-1024 (64 keys, SEA's k; absent ones -1).

The official SEA code (gmlwns2000/sea-attention) is not on PyPI, so no PyTorch SEA reference
is timed.

The default --layers is every layer above (the whole default run took 12.8 min on 2 idle vCPU
on 2026-12-04, with the torch rows); leave the kernel rows out with --layers
dense,routing,sea,routing_torch. Flags of the kernel rows:
--kv-heads (H_kv of *_gqa, default 1), --segments (documents of *_seg, default 4),
--kernel-impl (default 'auto'). --budget-min (default 20) stops starting new measurements, so
the largest n are the ones left out when a slow host runs past it.

Each (layer, n) runs in a fresh subprocess: fwd first, then fwd+bwd (ru_maxrss only grows, so
the fwd+bwd row's peak RSS is the larger of the two, in practice its own). Time: median (and
best) of --repeats runs after one warm-up run (torch: two), block_until_ready, compile time
separate. Memory: XLA's compiled memory_analysis() (temp, and temp + argument + output bytes;
deterministic, independent of the load) and the worker's peak RSS (ru_maxrss; includes ~0.3-0.5 GiB of runtime, the parameters and
the inputs). A configuration whose compiled temp + argument + output exceeds --max-gib is not run;
a layer that exceeds the memory or the time budget at some n is skipped at larger n. The cost
against n is fitted on a log-log scale (least squares over the measured n) per layer and pass.

Timings on a shared host are inflated by other jobs: every row carries the 1-minute load average
taken when it finished.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

from benchmarks import harness

ROOT = harness.ROOT
JAX_LAYERS = ("dense", "routing", "routing_nopos", "sea")
KERNEL_LAYERS = ("block", "block_gqa", "block_seg", "row", "row_gqa", "row_seg")
TORCH_LAYERS = ("routing_torch",)
ALL_LAYERS = JAX_LAYERS + KERNEL_LAYERS + TORCH_LAYERS
MODES = ("fwd", "fwd+bwd")
LOCAL_BLOCK = 128  # stdlib_demo.py query_block = memory_flange
SEA_K, SEA_TM, SEA_NBF = 64, 256, 8  # official scripts/opt.py
# Kernel rows: offsets (query block / query position minus listed block / key) of the band and
# the strided part; the same for every variant of an op.
BLOCK_OFFSETS = (0, 1, 2, 3, 8, 16, 24, 32)                          # in blocks of LOCAL_BLOCK
ROW_OFFSETS = tuple(range(32)) + tuple(32 * (m + 1) for m in range(32))  # in tokens


def _parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--lengths", default="1024,2048,4096,8192,16384",
                 help="comma-separated sequence lengths n")
  p.add_argument("--quick", action="store_true",
                 help="smoke check: n = 256,512, 2 repeats")
  p.add_argument("--layers", default=",".join(ALL_LAYERS),
                 help=f"comma-separated subset of {ALL_LAYERS} (routing_torch runs only where "
                      "torch and routing_transformer import under --torch_python)")
  p.add_argument("--device", default="cpu", choices=("cpu", "gpu", "auto"),
                 help="cpu: JAX_PLATFORMS=cpu; gpu: JAX_PLATFORMS=cuda; auto: whatever jax sees")
  p.add_argument("--heads", type=int, default=4)
  p.add_argument("--head-dim", type=int, default=64)
  p.add_argument("--routing-heads", type=int, default=2,
                 help="routing heads among --heads (the rest are local heads)")
  p.add_argument("--routing-rule", default="sqrt", choices=("sqrt", "official"))
  p.add_argument("--attention_impl", default="auto",
                 help="the sea layer's attention_impl: official | auto | xla | reference | "
                 "pallas_tpu | pallas_gpu | interpret (routing keeps stdlib_demo.py's 'auto')")
  p.add_argument("--kv-heads", type=int, default=1,
                 help="H_kv of the block_gqa / row_gqa rows (divides --heads; 1 = MQA)")
  p.add_argument("--segments", type=int, default=4,
                 help="equal documents per sequence in the block_seg / row_seg rows")
  p.add_argument("--kernel-impl", default="auto",
                 help="impl= of the kernel rows: auto | xla | reference | pallas_tpu | "
                      "pallas_gpu | interpret")
  p.add_argument("--torch_python", default=sys.executable,
                 help="interpreter of the routing_torch worker (a venv with torch and "
                      "routing-transformer; it needs no jax); default: this one")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--max-gib", type=float, default=4.0,
                 help="skip a configuration whose compiled temp+arg+out bytes exceed this")
  p.add_argument("--worker-timeout", type=float, default=300.0,
                 help="seconds one worker (layer, n: both passes, compiles included) may take")
  p.add_argument("--budget-min", type=float, default=20.0,
                 help="stop starting new measurements after this many minutes")
  p.add_argument("--worker", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.quick:
    args.lengths = "256,512"
    args.repeats = min(args.repeats, 2)
  args.lengths = [int(s) for s in args.lengths.split(",") if s]
  args.layers = [s for s in args.layers.split(",") if s]
  for name in args.layers:
    if name not in ALL_LAYERS:
      p.error(f"--layers: unknown layer {name!r}; allowed: {ALL_LAYERS}")
  if not 0 <= args.routing_heads <= args.heads:
    p.error(f"--routing-heads={args.routing_heads} must be in [0, --heads={args.heads}]")
  if args.kv_heads < 1 or args.heads % args.kv_heads:
    p.error(f"--kv-heads={args.kv_heads} must divide --heads={args.heads}")
  if args.segments < 1:
    p.error(f"--segments={args.segments} must be >= 1")
  return args


def routing_geometry(n: int, rule: str) -> tuple[int, int]:
  """(num_clusters K, window w) with K * w = n for the routing heads at length n."""
  if rule == "sqrt":
    k = 2 ** int(math.floor(math.log2(n) / 2))
  elif rule == "official":
    k = max(1, n // min(512, n))
  else:
    raise ValueError(f"routing rule {rule!r} is unknown; allowed: ['sqrt', 'official'].")
  return k, n // k


def routing_rule_text(rule: str) -> str:
  if rule == "sqrt":
    return ("K = 2^floor(log2(n)/2) clusters of w = n/K tokens (K ~ w ~ sqrt(n), the paper's "
            "O(n^1.5) setting)")
  return ("w = min(512, n), K = n/w (the released hparam sets: wikitext103_4k K=8, "
          "enwik8_8k K=16, w=512)")


def kernel_variant(layer: str) -> tuple[str, str]:
  """'block_gqa' -> ('block', 'gqa'); 'row' -> ('row', 'plain')."""
  op, _, feature = layer.partition("_")
  return op, feature or "plain"


def kernel_indices(op: str, n: int, xp):
  """The causal index lists of a kernel row at length n, [rows, slots] int32 (xp: numpy / jnp).

  block: row i = query block i (n // LOCAL_BLOCK rows), slots = BLOCK_OFFSETS blocks back;
  row: row t = query t (n rows), slots = ROW_OFFSETS keys back. Before the start: -1.
  """
  offsets = xp.asarray(BLOCK_OFFSETS if op == "block" else ROW_OFFSETS, dtype=xp.int32)
  rows = n // LOCAL_BLOCK if op == "block" else n
  idx = xp.arange(rows, dtype=xp.int32)[:, None] - offsets[None, :]
  return xp.where(idx >= 0, idx, -1).astype(xp.int32)


def kernel_text(layer: str, args_or_cfg) -> str:
  """The per-row description of a kernel row (what it lists, H_kv, segments)."""
  get = (args_or_cfg.get if isinstance(args_or_cfg, dict)
         else lambda k: getattr(args_or_cfg, k))
  op, feature = kernel_variant(layer)
  text = ("8 blocks of 128 (band 4, stride 8)" if op == "block"
          else "64 keys (band 32, stride 32)")
  if feature == "gqa":
    text += f", H_kv={get('kv_heads')}"
  elif feature == "seg":
    text += f", {get('segments')} segments"
  return text


# ----------------------------------------------------------------------------
# JAX layers (built inside a worker process).
# ----------------------------------------------------------------------------
def _build_jax_layer(cfg):
  """Returns (module, apply) with apply(module, x) -> (y [B, n, hidden], aux scalar)."""
  import jax.numpy as jnp
  from flax import nnx

  sys.path.insert(0, str(ROOT))
  import common  # noqa: F401  (no eager sharding of Params)

  h, d, n = cfg["heads"], cfg["head_dim"], cfg["n"]
  hidden = h * d
  rngs = nnx.Rngs(0)
  if cfg["layer"] == "dense":
    from common.layers.attention import MultiHeadAttention
    layer = MultiHeadAttention(h, hidden, head_dim=d, use_bias=False, rngs=rngs)

    def apply(m, x):
      return m(x, causal=True), jnp.zeros((), jnp.float32)
    return layer, apply

  if cfg["layer"] in ("routing", "routing_nopos"):
    layer = _build_routing(cfg, rngs, relative=cfg["layer"] == "routing")

    def apply(m, x):
      return m(x, train=False)
    return layer, apply

  if cfg["layer"] == "sea":
    from projects.sea.attention import SEAAttention

    class SEASelfAttention(nnx.Module):
      """OPT-style projections around the SEA core (q scaled by D^-1/2, biases)."""

      def __init__(self):
        self.q = nnx.Linear(hidden, hidden, rngs=rngs)
        self.k = nnx.Linear(hidden, hidden, rngs=rngs)
        self.v = nnx.Linear(hidden, hidden, rngs=rngs)
        self.o = nnx.Linear(hidden, hidden, rngs=rngs)
        self.core = SEAAttention(h, d, k=SEA_K, predictor_length=SEA_TM,
                                 performer_nb_factor=SEA_NBF, max_position_embeddings=n,
                                 attention_impl=cfg["attention_impl"], rngs=rngs)

      def __call__(self, x):
        b = x.shape[0]
        split = lambda t: t.reshape(b, n, h, d).transpose(0, 2, 1, 3)
        out = self.core(split(self.q(x)) * d ** -0.5, split(self.k(x)), split(self.v(x)))
        return self.o(out.context)

    layer = SEASelfAttention()

    def apply(m, x):
      return m(x), jnp.zeros((), jnp.float32)
    return layer, apply
  raise ValueError(f"layer {cfg['layer']!r} is not a JAX layer")


def _build_routing(cfg, rngs, *, relative: bool = True):
  """RoutingSelfAttention from stdlib_demo.py's model config with this run's heads and K, w
  (relative=False: without the Shaw terms)."""
  import dataclasses

  from flax import nnx

  from projects.routing_transformer import attention as rt_attention
  from projects.routing_transformer import config as rt_config
  from projects.routing_transformer import model as rt_model
  from projects.routing_transformer.configs import stdlib_demo

  k, w = routing_geometry(cfg["n"], cfg["routing_rule"])
  hr = cfg["routing_heads"]
  m = dataclasses.replace(
      rt_config.from_config(stdlib_demo.get_config("demo,routing").model),
      num_local_heads=cfg["heads"] - hr, num_routing_heads=hr,
      hidden_size=cfg["heads"] * cfg["head_dim"], num_clusters=k, window=w,
      **({} if relative else dict(local_relative=False, routing_relative=False)))
  init = nnx.initializers.variance_scaling(m.initializer_gain, "fan_avg", "uniform")
  # The model's own mapping from its config to one layer (model.attention_kwargs).
  return rt_attention.RoutingSelfAttention(m.hidden_size, kernel_init=init, rngs=rngs,
                                           **rt_model.attention_kwargs(m))


def _jax_extra(cfg):
  """The per-row description of a layer's sparsity settings at this n."""
  if cfg["layer"] in ("routing", "routing_nopos"):
    k, w = routing_geometry(cfg["n"], cfg["routing_rule"])
    return f"K={k}, w={w}"
  if cfg["layer"] == "sea":
    from projects.sea import masks
    t = masks.selection_tables(cfg["n"], SEA_TM, cfg["heads"], SEA_K)
    return f"keys/query<={t.max_keys}"
  if cfg["layer"] in KERNEL_LAYERS:
    return kernel_text(cfg["layer"], cfg)
  return "all n keys"


def measure_jax(cfg):
  """Per pass in cfg['modes']: compiles, checks the memory budget, times; a dict per pass."""
  import jax
  import jax.numpy as jnp

  if cfg["layer"] in KERNEL_LAYERS:
    return measure_kernel(cfg)
  from flax import nnx

  layer, apply = _build_jax_layer(cfg)
  graphdef, params, rest = nnx.split(layer, nnx.Param, ...)
  hidden = cfg["heads"] * cfg["head_dim"]
  x = jax.random.normal(jax.random.key(1), (1, cfg["n"], hidden), jnp.float32)

  def forward(params, rest, x):
    return apply(nnx.merge(graphdef, params, rest), x)

  def loss(params, rest, x):
    y, aux = forward(params, rest, x)
    return jnp.mean(jnp.square(y)) + aux

  return _measure_passes(cfg, forward, loss, (params, rest, x), grad_argnums=(0, 2))


def measure_kernel(cfg):
  """A kernel row: the common.kernels op alone on random q, k, v; a dict per pass."""
  import jax
  import jax.numpy as jnp

  sys.path.insert(0, str(ROOT))
  from common.kernels.block_sparse_attention import block_sparse_attention
  from common.kernels.row_sparse_attention import row_sparse_attention

  op, feature = kernel_variant(cfg["layer"])
  h, d, n = cfg["heads"], cfg["head_dim"], cfg["n"]
  h_kv = cfg["kv_heads"] if feature == "gqa" else h
  kq, kk, kv = jax.random.split(jax.random.key(1), 3)
  q = jax.random.normal(kq, (1, h, n, d), jnp.float32)
  k = jax.random.normal(kk, (1, h_kv, n, d), jnp.float32)
  v = jax.random.normal(kv, (1, h_kv, n, d), jnp.float32)
  idx = kernel_indices(op, n, jnp)
  idx = jnp.broadcast_to(idx[None, None], (1, h) + idx.shape)
  seg = None
  if feature == "seg":  # --segments equal documents: ids 0, 0, ..., 1, 1, ...
    seg = (jnp.arange(n, dtype=jnp.int32) * cfg["segments"] // n)[None]

  def forward(q, k, v, idx, seg):
    if op == "block":
      return block_sparse_attention(
          q, k, v, idx, block_q=LOCAL_BLOCK, block_k=LOCAL_BLOCK, causal=True,
          q_segment_ids=seg, kv_segment_ids=seg, impl=cfg["kernel_impl"])
    return row_sparse_attention(q, k, v, idx, q_segment_ids=seg, kv_segment_ids=seg,
                                impl=cfg["kernel_impl"])

  def loss(q, k, v, idx, seg):
    return jnp.mean(jnp.square(forward(q, k, v, idx, seg).astype(jnp.float32)))

  return _measure_passes(cfg, forward, loss, (q, k, v, idx, seg), grad_argnums=(0, 1, 2))


def _measure_passes(cfg, forward, loss, args, *, grad_argnums):
  """fwd = jit(forward), fwd+bwd = jit(grad(loss)) per pass in cfg['modes']: compiles, checks
  the memory budget, times; a dict per pass."""
  import gc

  import jax

  out = {}
  for mode in cfg["modes"]:
    fn = (jax.jit(forward) if mode == "fwd"
          else jax.jit(jax.grad(loss, argnums=grad_argnums)))
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    res = dict(compile_s=time.perf_counter() - t0, extra=_jax_extra(cfg))
    mem = compiled.memory_analysis()
    if mem is not None:
      res["temp_bytes"] = int(mem.temp_size_in_bytes)
      res["xla_bytes"] = int(mem.temp_size_in_bytes + mem.argument_size_in_bytes
                             + mem.output_size_in_bytes)
    if res.get("xla_bytes", 0) > cfg["max_gib"] * 2**30:
      res["skipped"] = (f"compiled needs {harness.fmt_bytes(res['xla_bytes'])} "
                        f"> --max-gib {cfg['max_gib']:g}; not run")
    else:
      _, times = harness.timed_calls(compiled, *args, repeats=cfg["repeats"])
      res.update(median_s=statistics.median(times), best_s=min(times))
      try:
        stats = jax.devices()[0].memory_stats() or {}
        res["device_peak_bytes"] = stats.get("peak_bytes_in_use")
      except Exception:  # noqa: BLE001  (CPU devices have no memory stats)
        pass
    res.update(_rss_and_load())
    out[mode] = res
    del compiled, fn
    gc.collect()
  return out


def _rss_and_load():
  return dict(peak_rss_bytes=harness.peak_rss_bytes(), load=os.getloadavg()[0])


# ----------------------------------------------------------------------------
# PyTorch reference (lucidrains' routing_transformer), inside a worker process.
# ----------------------------------------------------------------------------
def torch_status(python: str = sys.executable):
  """(True, version text) if torch and routing_transformer import under `python`, else
  (False, reason)."""
  code = ("import torch, routing_transformer, importlib.metadata as m; "
          "print(torch.__version__, m.version('routing-transformer'))")
  try:
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True,
                          check=False, timeout=300)
  except subprocess.TimeoutExpired:
    return False, "importing them took over 300 s"
  except OSError as e:
    return False, f"cannot run it: {e.strerror or e}"
  if proc.returncode:
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
    return False, tail[0] if tail else f"exit {proc.returncode}"
  torch_v, rt_v = proc.stdout.split()
  return True, f"torch {torch_v}, routing-transformer {rt_v}"


def measure_torch(cfg):
  """lucidrains' SelfAttention at the same shapes; a dict per pass in cfg['modes']."""
  import torch
  from routing_transformer.routing_transformer import SelfAttention

  threads = os.cpu_count() or 1
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  dev = "cuda" if cfg["device"] != "cpu" and torch.cuda.is_available() else "cpu"
  h, d, n = cfg["heads"], cfg["head_dim"], cfg["n"]
  _, w = routing_geometry(n, cfg["routing_rule"])
  attn = SelfAttention(
      dim=h * d, depth=1, max_seq_len=n, heads=h, local_attn_heads=h - cfg["routing_heads"],
      window_size=w, dim_head=d, local_attn_window_size=LOCAL_BLOCK, causal=True,
      shared_qk=True).to(dev)
  attn.eval()  # no k-means EMA update, as the JAX layer in eval mode
  x = torch.randn(1, n, h * d, device=dev)

  def step(mode):
    if mode == "fwd":
      with torch.no_grad():
        attn(x)
    else:
      xg = x.detach().requires_grad_(True)
      attn.zero_grad(set_to_none=True)
      y, aux = attn(xg)
      (y.square().mean() + aux).backward()
    if dev == "cuda":
      torch.cuda.synchronize()

  out = {}
  for mode in cfg["modes"]:
    if dev == "cuda":
      torch.cuda.reset_peak_memory_stats()
    # Two warm-ups: first-call allocations and kernel selection, and the first call after
    # import is often far slower than the second.
    first_s, times = harness.timed_loop(lambda: step(mode), repeats=cfg["repeats"], warmups=2)
    res = dict(median_s=statistics.median(times), best_s=min(times), compile_s=first_s,
               extra=f"K={n // w}, w={w}")
    if dev == "cuda":
      res["device_peak_bytes"] = torch.cuda.max_memory_allocated()
    res.update(_rss_and_load())
    out[mode] = res
  return out


# ----------------------------------------------------------------------------
# Driver.
# ----------------------------------------------------------------------------
def _worker_env(device):
  env = dict(os.environ)
  if device == "cpu":
    env["JAX_PLATFORMS"] = "cpu"
  elif device == "gpu":
    env["JAX_PLATFORMS"] = "cuda"
  return env


def _run_worker(cfg, timeout, python=None):
  env = harness.repo_env(_worker_env(cfg["device"]))
  res = harness.run_worker(str(pathlib.Path(__file__).resolve()), cfg, env, timeout,
                           python=python)
  if "error" in res:
    res["load"] = os.getloadavg()[0]
  return res


def _machine(args):
  env = _worker_env(args.device)
  code = ("import jax, jaxlib, flax; d = jax.devices()[0]; "
          "print(f'jax {jax.__version__} / jaxlib {jaxlib.__version__} / flax {flax.__version__}"
          " on {jax.default_backend()} ({d.device_kind})')")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                        check=False, timeout=300)
  jax_text = proc.stdout.strip() or f"jax failed to start: {proc.stderr.strip()[-200:]}"
  return (f"{os.cpu_count()} vCPU {harness.cpu_model()}, {platform.system()} "
          f"{platform.machine()}, Python {platform.python_version()}, {jax_text}")


def run(args):
  started = time.perf_counter()
  load_start = os.getloadavg()
  layers = list(args.layers)
  torch_note = None
  if "routing_torch" in layers:
    ok, text = torch_status(args.torch_python)
    if ok:
      torch_note = (f"PyTorch reference (routing_torch): {text} under {args.torch_python}, "
                    f"{os.cpu_count()} threads; "
                    "lucidrains' routing_transformer.routing_transformer.SelfAttention(dim=hidden, "
                    "heads=H, dim_head=D, local_attn_heads=H-H_r, window_size=w (K = n/w), "
                    f"local_attn_window_size={LOCAL_BLOCK}, causal, shared_qk), eval mode; its "
                    "local heads use rotary positions, its routing heads none (ours: Shaw "
                    "relative positions in both).")
    else:
      torch_note = (f"PyTorch reference: not run: torch / routing_transformer do not import in "
                    f"{args.torch_python} ({text}).")
      print(torch_note, file=sys.stderr, flush=True)
      layers.remove("routing_torch")
  base = dict(heads=args.heads, head_dim=args.head_dim, routing_heads=args.routing_heads,
              routing_rule=args.routing_rule, attention_impl=args.attention_impl,
              repeats=args.repeats, kv_heads=args.kv_heads, segments=args.segments,
              kernel_impl=args.kernel_impl, max_gib=args.max_gib, device=args.device)
  results = {}   # (layer, mode, n) -> dict
  dropped = {}   # (layer, mode) -> reason that holds for every larger n
  for n in sorted(args.lengths):
    for layer in layers:
      modes = []
      for mode in MODES:
        key = (layer, mode, n)
        if (layer, mode) in dropped:
          results[key] = dict(skipped=dropped[(layer, mode)])
        elif time.perf_counter() - started > args.budget_min * 60:
          results[key] = dict(skipped=f"not run: time budget --budget-min {args.budget_min:g} "
                                      "spent")
        elif n % LOCAL_BLOCK and (
            layer.startswith("block")
            or (layer in ("routing", "routing_nopos", "routing_torch")
                and args.routing_heads < args.heads)):
          results[key] = dict(skipped=f"not run: n is not a multiple of the local block "
                                      f"{LOCAL_BLOCK}")
        else:
          modes.append(mode)
      if not modes:
        continue
      res = _run_worker(dict(base, layer=layer, modes=modes, n=n), args.worker_timeout,
                        python=args.torch_python if layer in TORCH_LAYERS else None)
      for mode in modes:
        r = res.get(mode, res)  # a failed worker returns one error for all its passes
        print(f"  {layer:13s} {mode:7s} n={n:6d} {r}", file=sys.stderr, flush=True)
        results[(layer, mode, n)] = r
        if "error" in r and "timed out" in r["error"]:
          dropped[(layer, mode)] = f"not run: n={n} timed out"
        elif "skipped" in r:
          dropped[(layer, mode)] = (f"not run: n={n} already needed "
                                    f"{harness.fmt_bytes(r.get('xla_bytes'))} > --max-gib")
  elapsed = time.perf_counter() - started
  return results, layers, torch_note, elapsed, load_start


def render(args, results, layers, torch_note, elapsed, load_start, machine):
  hidden = args.heads * args.head_dim
  argv = " ".join(sys.argv[1:])
  lines = [
      "## Long-context attention layers", "",
      f"Measured {datetime.date.today().isoformat()} by "
      f"`python benchmarks/long_context.py{(' ' + argv) if argv else ''}` "
      f"({elapsed / 60:.1f} min). Machine: {machine}. Load average (1/5/15 min) at start "
      f"{load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f}, at the end "
      + " / ".join(f"{v:.2f}" for v in os.getloadavg()) + ".", "",
      f"Shapes: batch 1, H = {args.heads} heads x D = {args.head_dim} (hidden {hidden}), float32, "
      f"causal, the whole layer (projections included). routing: {args.routing_heads} routing + "
      f"{args.heads - args.routing_heads} local heads (stdlib_demo.py fields: relative positions, "
      f"local block {LOCAL_BLOCK} + flange {LOCAL_BLOCK}); routing rule '{args.routing_rule}': "
      f"{routing_rule_text(args.routing_rule)}. sea: k = {SEA_K}, T_M = {SEA_TM}, nbf = "
      f"{SEA_NBF}, attention_impl '{args.attention_impl}'. Time: median of {args.repeats} runs after a "
      f"warm-up (torch: two); compile: lower + compile (torch: the first call). XLA temp / XLA total: "
      f"memory_analysis() temp and temp + argument + output bytes; peak RSS: the worker "
      f"process's ru_maxrss (one worker per layer and n runs fwd, then fwd+bwd). load: 1-min load average when the row finished.", ""]
  if any(layer in KERNEL_LAYERS for layer in layers):
    lines += [
        f"Kernel rows (block*, row*): the common.kernels op alone, q [1, {args.heads}, n, "
        f"{args.head_dim}], k/v [1, H_kv, n, {args.head_dim}], float32, impl "
        f"'{args.kernel_impl}'; fwd+bwd: grad of mean(o^2) in q, k, v. block: "
        f"block_sparse_attention, causal, blocks of {LOCAL_BLOCK}, query block i lists blocks "
        f"i-{', i-'.join(map(str, BLOCK_OFFSETS))} (band 4 + stride 8, <= "
        f"{len(BLOCK_OFFSETS) * LOCAL_BLOCK} keys per query); row: row_sparse_attention, query t "
        f"lists keys t-0..t-31 and t-32, t-64, ..., t-1024 ({len(ROW_OFFSETS)} keys). *_gqa: "
        f"H_kv = {args.kv_heads} (plain: H_kv = H = {args.heads}); *_seg: q/kv segment ids of "
        f"{args.segments} equal documents (same lists, so the masking alone).", ""]
  if torch_note:
    lines += [torch_note, ""]
  lines += ["SEA official PyTorch code: not measured (gmlwns2000/sea-attention is not on PyPI; "
            "not vendored).", ""]
  fmt_bytes = harness.fmt_bytes
  for mode in MODES:
    lines += [f"### {mode}", "",
              "| layer | n | sparsity | median (ms) | best (ms) | compile (s) | XLA temp | XLA total | "
              "peak RSS | device peak | load | note |",
              "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for layer in layers:
      for n in sorted(args.lengths):
        r = results.get((layer, mode, n), {})
        note = r.get("error") or r.get("skipped") or ""
        t = f"{r['median_s'] * 1e3:.1f}" if "median_s" in r else "-"
        best = f"{r['best_s'] * 1e3:.1f}" if "best_s" in r else "-"
        c = f"{r['compile_s']:.1f}" if r.get("compile_s") is not None else "-"
        load = f"{r['load']:.2f}" if r.get("load") is not None else "-"
        lines.append(
            f"| {layer} | {n} | {r.get('extra', '-')} | {t} | {best} | {c} | "
            f"{fmt_bytes(r.get('temp_bytes'))} | {fmt_bytes(r.get('xla_bytes'))} | "
            f"{fmt_bytes(r.get('peak_rss_bytes'))} | {fmt_bytes(r.get('device_peak_bytes'))} | "
            f"{load} | {note} |")
    lines.append("")
  lines += ["### Fitted exponents (cost ~ n^p, log-log least squares over the measured n)", "",
            "Time exponents on a loaded shared host are noisy; the XLA-bytes exponent is "
            "deterministic. Expected: dense 2 (time and memory); "
            + ("routing n^1.5 in its routing heads with K ~ w ~ sqrt(n) (the paper's claim) plus "
               "linear local heads and projections, so fits over short n land between 1 and 1.5; "
               if args.routing_rule == "sqrt" else
               "routing 1 with the official fixed w = 512 (K grows with n, each token still "
               "attends to w keys); ")
            + "SEA's operation count is linear in n at fixed k and T_M; the kernel rows 1 "
            "(a fixed number of listed keys per query).", "",
            "| layer | pass | n measured | time exponent (median) | time exponent (best) | "
            "XLA temp exponent | XLA total exponent |",
            "|---|---|---|---:|---:|---:|---:|"]
  fmt = lambda v: "-" if v is None else f"{v:.2f}"
  for layer in layers:
    for mode in MODES:
      ok = [(n, results[(layer, mode, n)]) for n in sorted(args.lengths)
            if "median_s" in results.get((layer, mode, n), {})]
      ns = [n for n, _ in ok]
      lines.append(
          f"| {layer} | {mode} | {','.join(map(str, ns)) or '-'} | "
          f"{fmt(harness.loglog_slope(ns, [r['median_s'] for _, r in ok]))} | "
          f"{fmt(harness.loglog_slope(ns, [r['best_s'] for _, r in ok]))} | "
          f"{fmt(harness.loglog_slope(ns, [r.get('temp_bytes') for _, r in ok]))} | "
          f"{fmt(harness.loglog_slope(ns, [r.get('xla_bytes') for _, r in ok]))} |")
  lines.append("")
  lines += _feature_ratios(args, results, layers)
  return "\n".join(lines)


def _feature_ratios(args, results, layers):
  """Lines of the table 'kernel variant / plain op at the same n and pass' (empty if none)."""
  def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"

  rows = []
  for layer in layers:
    op, feature = kernel_variant(layer)
    if layer not in KERNEL_LAYERS or feature == "plain" or op not in layers:
      continue
    for mode in MODES:
      for n in sorted(args.lengths):
        var, plain = results.get((layer, mode, n), {}), results.get((op, mode, n), {})
        if "median_s" not in var or "median_s" not in plain:
          continue
        rows.append(
            f"| {layer} | {mode} | {n} | {ratio(var['median_s'], plain['median_s'])} | "
            f"{ratio(var['best_s'], plain['best_s'])} | "
            f"{ratio(var.get('temp_bytes'), plain.get('temp_bytes'))} | "
            f"{ratio(var.get('xla_bytes'), plain.get('xla_bytes'))} |")
  if not rows:
    return []
  return ["### Kernel features: cost relative to the plain op (same n, same pass)", "",
          f"*_gqa: H_kv = {args.kv_heads} of H = {args.heads}; *_seg: {args.segments} segments. "
          "Below 1: cheaper than MHA / no segment ids.", "",
          "| layer | pass | n | time / plain (median) | time / plain (best) | "
          "XLA temp / plain | XLA total / plain |",
          "|---|---|---:|---:|---:|---:|---:|"] + rows + [""]


def main(argv=None):
  args = _parse_args(argv)
  if args.worker:
    cfg = json.loads(args.worker)
    res = measure_torch(cfg) if cfg["layer"] in TORCH_LAYERS else measure_jax(cfg)
    print(json.dumps(res))
    return None
  machine = _machine(args)
  results, layers, torch_note, elapsed, load_start = run(args)
  text = render(args, results, layers, torch_note, elapsed, load_start, machine)
  print(text)
  return text


if __name__ == "__main__":
  main()
