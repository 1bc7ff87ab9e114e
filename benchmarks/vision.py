"""SViT-S, BiFormer-T and ViT-B/16 at 224: our train step and eval forward against the official
PyTorch code, timed in the same run, interleaved; writes benchmarks/RESULTS_vision.md.

A script, never a test. Usage:

    python benchmarks/vision.py                     # ours only: batch 8 @ 224, 5 rounds
    python benchmarks/vision.py --torch_python /tmp/torchenv/bin/python \\
        --official svit=/tmp/official/stvit,biformer=/tmp/official/biformer
    # on a GPU (jax's default backend), both sides there, as the official code trains (AMP):
    python benchmarks/vision.py --batch 64 --dtype bfloat16 --torch_python python3 \\
        --official svit=DIR,biformer=DIR

The PyTorch environment and the official sources (nothing of them is kept in this repository;
the commits are the ones ../shared/specs/vision.md describes):

    python -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0 einops   # the CPU build; a bare 'torch' may
                                                         # pull a multi-GB CUDA build
    # hhb072/STViT @ c9ed9a4: its models/ folder into /tmp/official/stvit/
    # rayleizhu/BiFormer @ 1697bbb: its models/ and ops/ folders into /tmp/official/biformer/

timm, fvcore, scipy and fairscale are not needed: benchmarks/vision_torch.py stands in for the
few names the official files import from them. Without --torch_python (or when the reference
fails to start) the table says why and has our columns only.

What is timed, per model, both sides at batch 8 (--batch), 1000 classes, random data, in float32
(--dtype float32) or mixed precision (--dtype bfloat16: our configs' model.dtype bfloat16, float32
parameters; PyTorch under torch.autocast(dtype=torch.bfloat16), as the official training scripts
run under autocast). Both sides run on jax's default backend: where that is a GPU, the PyTorch side
runs on CUDA, with TF32 matmuls and convolutions (XLA's default for float32 there) and
cudnn.benchmark (as the official main.py files set it):
- 'train step': ours is the shared trainer's jitted, donated step (common.train.step) under the
  model's ImageNet config (projects/*/configs), with drop path, dropout, Mixup and EMA off and
  the --dtype compute; it holds forward, backward, global-norm clipping where the config has it, and
  AdamW. PyTorch's is forward, cross-entropy, backward and torch.optim.AdamW.step.
- 'eval forward': the eval-mode forward (BatchNorm running statistics); torch under
  inference_mode.
- 'matmul': one 2048^3 float32 matmul, the BLAS-level peak in each library (on a GPU, TF32: for
  --dtype bfloat16 read the '% of peak' column as relative only).
Each side runs in its own process (benchmarks.harness.Served), built and warmed up once; then
each round times one call of every mode on each side in turn (ours, torch, ours, torch, ...), so
load changes hit both sides alike. The table gives the median over rounds. ViT-B/16 is the
lazy_neuron preset (ReLU MLPs, class token); its PyTorch side is a plain torch ViT of the same
shape (vision_torch.PlainViT). The train step's FLOPs are XLA's cost analysis of our step; the
'% of peak' column divides them by each side's step time and by that side's own matmul peak.
"""
from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import statistics
import sys

import jax
import jax.numpy as jnp
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding)
from benchmarks import harness

ROOT = harness.ROOT
RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS_vision.md"
MODES = ("train_step", "forward", "matmul")
_IMAGE_OFF = {"model.drop_path_rate": 0.0, "model.mixup.prob": 0.0}
# Our side of each model: the config file and what makes it the plain step timed above (the
# compute dtype is added from --dtype).
MODELS = {
    "SViT-S": ("projects/svit/configs/imagenet.py:SViT-S", _IMAGE_OFF),
    "BiFormer-T": ("projects/biformer/configs/imagenet.py:BiFormer-T", _IMAGE_OFF),
    "ViT-B/16": ("projects/lazy_neuron/configs/vit_b16_imagenet.py:relu",
                 {"model.dropout_rate": 0.0}),
}
DTYPES = ("float32", "bfloat16")
MATMUL = 2048


def build_preset(name: str):
  """The paper preset `name` (SViT-S/B/L, BiFormer-T/S/B/STL) with 1000 classes, abstract."""
  if name.startswith("SViT"):
    from projects.svit import STViT, preset
    return nnx.eval_shape(lambda: STViT(preset(name), rngs=nnx.Rngs(0)))
  from projects.biformer import BiFormer, preset
  return nnx.eval_shape(lambda: BiFormer(preset(name), rngs=nnx.Rngs(0)))


def _flops(lowered) -> float:
  """XLA's FLOP count of a step; NaN where the backend gives none (a GPU run of jax 0.11 gave
  None for the lowered step: the compiled one is asked next)."""
  for analysis in (lowered.cost_analysis, lambda: lowered.compile().cost_analysis()):
    cost = analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
    if cost and "flops" in cost:
      return float(cost["flops"])
  return float("nan")


def serve_ours(cfg: dict):
  """Worker setup (harness.serve) for our side of one model."""
  from benchmarks import train_step as train_step_lib
  spec, overrides = MODELS[cfg["model"]]
  run, state, step, batch = train_step_lib.compiled_step(
      str(ROOT / spec), cfg["batch"], **overrides,
      **{"data.image_size": cfg["size"], "model.dtype": cfg["dtype"]})
  forward = jax.jit(lambda p, r, x: run.task.eval_forward(run.spec.merge(p, r), {"image": x}))
  holder = {"state": state}
  step_flops = _flops(step.lower(state, batch))

  def train_step():
    with run.mesh:
      holder["state"], metrics = step(holder["state"], batch)
      jax.block_until_ready(metrics)

  def eval_forward():
    s = holder["state"]
    with run.mesh:
      jax.block_until_ready(forward(s["params"], s["model_state"], batch["image"]))

  a = jnp.ones((MATMUL, MATMUL), jnp.float32)
  matmul = jax.jit(lambda a: a @ a)
  calls = dict(train_step=train_step, forward=eval_forward,
               matmul=lambda: jax.block_until_ready(matmul(a)))
  params = sum(x.size for x in jax.tree.leaves(state["params"]))
  info = dict(params=int(params), version=f"jax {jax.__version__}", step_flops=step_flops)
  return info, {m: calls[m] for m in cfg["modes"]}


def measure(name: str, args, sources: dict) -> dict:
  cfg = dict(model=name, batch=args.batch, size=args.size, modes=list(MODES), dtype=args.dtype,
             threads=os.cpu_count() or 1, sources=sources, backend=jax.default_backend())
  sides = {"ours": harness.Served(__file__, cfg, harness.repo_env())}
  row = dict(model=name, info={"ours": sides["ours"].info}, torch_error=None)
  if args.torch_python:
    try:
      sides["torch"] = harness.Served(str(ROOT / "benchmarks/vision_torch.py"), cfg,
                                      harness.repo_env(), python=args.torch_python)
      row["info"]["torch"] = sides["torch"].info
    except RuntimeError as e:
      row["torch_error"] = str(e)
  times = {(side, mode): [] for side in sides for mode in MODES}
  try:
    for _ in range(args.rounds):
      for mode in MODES:
        for side, worker in sides.items():
          times[side, mode].append(worker.time(mode))
  finally:
    for worker in sides.values():
      worker.close()
  row["median"] = {k: statistics.median(v) for k, v in times.items() if v}
  row["best"] = {k: min(v) for k, v in times.items() if v}
  return row


def _peak_fraction(row, side) -> float:
  """Share of this side's own matmul peak that its train step reaches, on XLA-counted FLOPs."""
  peak = 2 * MATMUL ** 3 / row["best"][side, "matmul"]
  return row["info"]["ours"]["step_flops"] / row["median"][side, "train_step"] / peak


def render(rows: list[dict], args, load_start: float, minutes: float) -> str:
  torch_version = next((r["info"]["torch"]["version"] for r in rows if "torch" in r["info"]),
                       None)
  machine = f"{harness.cpu_model()} ({os.cpu_count()} logical CPUs, {platform.machine()})"
  if jax.default_backend() == "gpu":
    machine = f"{jax.devices()[0].device_kind} (GPU; host {machine})"
  lines = [
      "## Vision models against the official PyTorch code (benchmarks/vision.py)", "",
      f"{datetime.date.today().isoformat()}, {machine}; jax {jax.__version__}, backend "
      f"{jax.default_backend()}"
      + (f"; {torch_version}" if torch_version else "")
      + f". Load average {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
      f"{minutes:.1f} min. Batch {args.batch} @ {args.size}, {args.dtype}, median of {args.rounds} "
      "interleaved rounds (ours, PyTorch, ours, ...), compile and warm-up excluded.", "",
      "| model | params ours / PyTorch | train step ours | PyTorch | ours relative speed "
      "| eval forward ours | PyTorch | ours relative speed | train step % of own matmul peak, "
      "ours / PyTorch |",
      "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    med, has_torch = r["median"], ("torch", "train_step") in r["median"]
    ours_p = r["info"]["ours"]["params"]
    torch_p = r["info"]["torch"]["params"] if has_torch else None

    def pair(mode):
      ours = med["ours", mode]
      if not has_torch:
        return f"{ours:.2f} s | - | -"
      theirs = med["torch", mode]
      return f"{ours:.2f} s | {theirs:.2f} s | {theirs / ours:.2f}x"

    pct = lambda x: "-" if x != x else f"{100 * x:.0f}%"      # NaN: no FLOP count
    frac = pct(_peak_fraction(r, "ours"))
    if has_torch:
      frac += f" / {pct(_peak_fraction(r, 'torch'))}"
    lines.append(f"| {r['model']} | {ours_p:,} / {f'{torch_p:,}' if torch_p else '-'} | "
                 f"{pair('train_step')} | {pair('forward')} | {frac} |")
  peaks = []
  for side, label in (("ours", "jax"), ("torch", "torch")):
    best = [r["best"][side, "matmul"] for r in rows if (side, "matmul") in r["best"]]
    if best:
      peaks.append(f"{label} {2 * MATMUL ** 3 / min(best) / 1e9:.0f} GFLOP/s")
  lines += ["", f"Matmul peak ({MATMUL}^3 float32, best call): {', '.join(peaks)}. XLA-counted "
            "train-step FLOPs: " + ", ".join(
                f"{r['model']} {r['info']['ours']['step_flops'] / 1e9:.0f} G" for r in rows) + "."]
  errors = [f"{r['model']}: {r['torch_error']}" for r in rows if r["torch_error"]]
  if not args.torch_python:
    lines += ["", "PyTorch reference: not run (no --torch_python; recipe in the script's "
              "docstring)."]
  elif errors:
    lines += ["", "PyTorch reference failed to start: " + "; ".join(errors) + "."]
  return "\n".join(lines) + "\n"


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--models", default=",".join(MODELS))
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--size", type=int, default=224)
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--dtype", default="float32", choices=DTYPES,
                 help="compute dtype: float32, or bfloat16 mixed precision (ours: model.dtype; "
                      "PyTorch: autocast)")
  p.add_argument("--torch_python", default=None,
                 help="interpreter of a venv with torch (and einops) for the PyTorch side")
  p.add_argument("--official", default="",
                 help="official source folders: svit=DIR,biformer=DIR (see the docstring)")
  p.add_argument("--out", default=str(RESULTS))
  args = p.parse_args(argv)
  sources = dict(kv.split("=", 1) for kv in args.official.split(",") if kv)
  unknown = [m for m in args.models.split(",") if m not in MODELS]
  if unknown:
    sys.exit(f"error: unknown --models {unknown}; choose from {list(MODELS)}")
  load_start, start = os.getloadavg()[0], datetime.datetime.now()
  rows = []
  for name in args.models.split(","):
    rows.append(measure(name, args, sources))
    print(rows[-1]["model"], {f"{s} {m}": round(t, 3) for (s, m), t in rows[-1]["median"].items()},
          flush=True)
  text = render(rows, args, load_start, (datetime.datetime.now() - start).seconds / 60)
  pathlib.Path(args.out).write_text(text)
  print(text)


if __name__ == "__main__":
  if "--serve" in sys.argv:
    harness.serve(serve_ours)
  else:
    main()
