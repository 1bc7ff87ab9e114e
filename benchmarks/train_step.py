"""Train-step throughput of the shared trainer's step on this machine (a benchmark, not a test).

  python benchmarks/train_step.py [--steps 10] [--out benchmarks/RESULTS_train_step.md]
  python benchmarks/train_step.py --config projects/moex/configs/chess.py:demo,switch \
      --config projects/moex/configs/chess.py:demo,switch --set model.dispatch=dense

Times the jit-compiled, donated train step of the shared trainer (compile excluded; best of
`--repeats` timings of `--steps` steps each). Without `--config`: the Lazy Neuron cases, the
MNIST demo ViT (ReLU and top-k) at its configured batch and the paper-scale ViT-B/16 preset at
batch 8 (random 224x224 images, so ImageNet need not be present). With `--config SPEC`
(repeatable): any config, on the first batch of its own training data (which must be
prepared); `--set FIELD=VALUE` (repeatable, dotted, Python literals or strings) applies to the
`--config` given just before it. Prints a markdown table and writes it to `--out`.
"""
from __future__ import annotations

import argparse
import ast
import datetime
import os
import platform
import time

import jax
import numpy as np

from benchmarks import harness  # noqa: F401  (stops a run that would time another checkout)
from common.train import config_io, state as state_lib, step as step_lib, trainer

CASES = (
    ("ViT demo (MNIST-5k), ReLU", "projects/lazy_neuron/configs/vit_mnist.py:demo,relu", None),
    ("ViT demo (MNIST-5k), top-k", "projects/lazy_neuron/configs/vit_mnist.py:demo,topk", None),
    ("ViT-B/16 preset, ReLU", "projects/lazy_neuron/configs/vit_b16_imagenet.py:relu", 8),
    ("ViT-B/16 preset, top-k", "projects/lazy_neuron/configs/vit_b16_imagenet.py:topk", 8),
)


class _RandomImages:
  """Stands in for the task's data: random images with the config's shape, no dataset needed."""

  def __init__(self, config, batch: int):
    d = config.data
    size, ch = d.get("image_size", 224) or 224, d.get("channels", 3) or 3
    rng = np.random.default_rng(0)
    self.batch = {"image": rng.normal(size=(batch, size, size, ch)).astype(np.float32),
                  "label": rng.integers(0, d.get("num_classes", 1000) or 1000, batch).astype(np.int32)}


def compiled_step(spec: str, batch: int | None, *, task_data: bool = False, **overrides):
  """The shared trainer's jitted, donated train step for config `spec`, with a fresh state and
  one batch (random images, or with `task_data` the first batch of the task's own training
  data): (run, state, step, batch_arrays). EMA off; a single-axis data mesh."""
  overrides = {"mesh.shape": {"data": -1, "fsdp": 1, "model": 1, "expert": 1}, **overrides}
  if batch:
    overrides.update({"train.batch_size": batch, "eval.batch_size": batch})
  config = config_io.load_config(spec, **overrides)
  run = trainer.setup(config, check_data=task_data)
  state = trainer.init_state(run)
  fn = step_lib.make_train_step(run.task, run.spec, run.tx, run.lr_schedule,
                                grad_accum_steps=1, nonfinite="skip", ema_decay=0.0, seed=0)
  step = jax.jit(fn, donate_argnums=(0,))
  if task_data:
    first = next(iter(run.task.train_data(seed=0, process_index=0, process_count=1,
                                          batch_size=config.train.batch_size)))
  else:
    first = _RandomImages(config, config.train.batch_size).batch
  return run, state, step, run.put_batch(first)


def _literal(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text  # a bare word: a string value


def config_cases(pairs: list[tuple[str, str]]) -> list[tuple[str, str, dict]]:
  """(name, spec, overrides) for each `--config`, with the `--set`s that follow it; `pairs` are
  the (flag, value) of both flags in command-line order (parse_args(...).pairs)."""
  cases = []
  for flag, value in pairs:
    if flag == "--config":
      cases.append([value, value, {}])
    elif flag == "--set":
      if not cases or "=" not in value:
        raise SystemExit(f"error: --set {value!r} needs FIELD=VALUE after a --config.")
      key, _, text = value.partition("=")
      cases[-1][2][key] = _literal(text)
      cases[-1][0] += f" [{value}]"
  return [tuple(c) for c in cases]


def bench(spec: str, batch: int | None, steps: int, repeats: int, *, task_data: bool = False,
          **overrides) -> dict:
  run, state, step, batch_arrays = compiled_step(spec, batch, task_data=task_data, **overrides)
  batch = run.config.train.batch_size
  with run.mesh:
    t0 = time.perf_counter()
    state, m = step(state, batch_arrays)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
      t0 = time.perf_counter()
      for _ in range(steps):
        state, m = step(state, batch_arrays)
      jax.block_until_ready(m)
      best = min(best, (time.perf_counter() - t0) / steps)
  return dict(batch=batch, params=state_lib.count_params(run.abstract_state["params"]),
              compile_s=compile_s, step_s=best, steps_per_s=1 / best,
              examples_per_s=batch / best)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--only", default="", help="substring filter on case names")
  parser.add_argument("--out", default="benchmarks/RESULTS_train_step.md")
  # Both flags append to one list, so each --set stays after the --config it belongs to.
  parser.add_argument("--config", dest="pairs", action="append", default=[],
                      type=lambda v: ("--config", v), metavar="SPEC",
                      help="a config spec to time on its own data (repeatable)")
  parser.add_argument("--set", dest="pairs", action="append",
                      type=lambda v: ("--set", v), metavar="FIELD=VALUE",
                      help="FIELD=VALUE override for the --config before it (repeatable)")
  return parser.parse_args(argv)


def main(argv: list[str] | None = None):
  args = parse_args(argv)
  cases = ([(n, s, None, o) for n, s, o in config_cases(args.pairs)]
           if args.pairs else [(n, s, b, None) for n, s, b in CASES])
  rows = []
  for name, spec, batch, overrides in cases:
    if args.only and args.only not in name:
      continue
    r = bench(spec, batch, args.steps, args.repeats, task_data=overrides is not None,
              **(overrides or {}))
    rows.append((name, r))
    print(name, r, flush=True)
  load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
  lines = [
      "## Train step (benchmarks/train_step.py)",
      "",
      f"{datetime.date.today()}, {jax.devices()[0].platform} x{jax.device_count()} "
      f"({os.cpu_count()} cores, {platform.processor() or platform.machine()}), jax {jax.__version__}, "
      f"load average at the end {load:.1f}. Compile excluded; best of {args.repeats} x {args.steps} steps.",
      "",
      "| model | batch | params | compile s | ms/step | steps/s | examples/s |",
      "|---|---|---|---|---|---|---|",
  ]
  for name, r in rows:
    lines.append(f"| {name} | {r['batch']} | {r['params']:,} | {r['compile_s']:.1f} | "
                 f"{1000 * r['step_s']:.0f} | {r['steps_per_s']:.2f} | {r['examples_per_s']:.1f} |")
  text = "\n".join(lines) + "\n"
  print(text)
  with open(args.out, "w") as f:
    f.write(text)


if __name__ == "__main__":
  main()
