"""Images/s of SViT-S and BiFormer-T at 224: eval forward and forward+backward; writes a table.

A script, never a test. Usage:

    python benchmarks/vision.py                   # batch 8, 224x224, 3 timed calls
    python benchmarks/vision.py --batch 16 --repeats 5 --models SViT-S

Models are the paper presets with 1000 classes, built abstractly and filled with random
values (the speed does not depend on the values; a jitted random init would cost minutes of
compilation on CPU). 'forward' is the eval-mode forward (BatchNorm running statistics);
'forward+backward' is the gradient of the summed logits with respect to all parameters in
train mode (batch statistics; drop path off, rate 0), i.e. the model part of a train step
without the optimiser. Each is jit-compiled, called once untimed (compilation), then timed
over --repeats calls; the median is reported. Results go to benchmarks/RESULTS_vision.md with
the machine and date. On CPU the BiFormer uses the 'gather' routed attention (the XLA path);
a GPU/TPU section is written only when such a backend is present.
"""
from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import common  # noqa: F401  (switches off eager variable sharding)
from benchmarks import harness

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS_vision.md"


def build_preset(name: str):
  """The paper preset `name` (SViT-S/B/L, BiFormer-T/S/B/STL) with 1000 classes, abstract."""
  if name.startswith("SViT"):
    from projects.svit import STViT, preset
    return nnx.eval_shape(lambda: STViT(preset(name), rngs=nnx.Rngs(0)))
  from projects.biformer import BiFormer, preset
  return nnx.eval_shape(lambda: BiFormer(preset(name), rngs=nnx.Rngs(0)))


def _materialise(model, seed: int = 0):
  """Random, well-scaled values for every variable of an abstract model (no compilation)."""
  rng = np.random.default_rng(seed)
  updates = []
  for path, var in nnx.to_flat_state(nnx.state(model)):
    shape, dtype = tuple(var.shape), var.dtype
    if path[-1] in ("var", "scale"):
      value = np.ones(shape, np.float32)
    else:
      fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
      value = rng.standard_normal(shape).astype(np.float32) / np.sqrt(max(1, fan_in))
    updates.append((path, var.replace(jnp.asarray(value, dtype))))
  nnx.update(model, nnx.from_flat_state(updates))
  return model


def _time(fn, *args, repeats: int) -> tuple[float, float]:
  first, times = harness.timed_calls(fn, *args, repeats=repeats)
  return statistics.median(times), first


def measure(name: str, batch: int, size: int, repeats: int) -> dict:
  model = _materialise(build_preset(name))
  x = jnp.asarray(np.random.default_rng(1).standard_normal((batch, size, size, 3)), jnp.float32)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  # Pure dicts, as the trainer passes them: merged Variables are then created inside each trace,
  # so train-mode BatchNorm may update its statistics under jax.grad.
  params, rest = nnx.to_pure_dict(params), nnx.to_pure_dict(rest)

  @jax.jit
  def forward(params, rest, x):
    return nnx.merge(graphdef, params, rest)(x, train=False)

  @jax.jit
  def forward_backward(params, rest, x):
    def loss(p):
      model = nnx.merge(graphdef, p, rest)
      return jnp.sum(model(x, train=True))
    return jax.grad(loss)(params)

  fwd, fwd_first = _time(forward, params, rest, x, repeats=repeats)
  bwd, bwd_first = _time(forward_backward, params, rest, x, repeats=repeats)
  count = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(params))
  return dict(model=name, params=count, batch=batch, size=size,
              fwd_ips=batch / fwd, fwd_s=fwd, fwd_first_s=fwd_first,
              bwd_ips=batch / bwd, bwd_s=bwd, bwd_first_s=bwd_first)


def _machine() -> str:
  cores = os.cpu_count()
  try:
    load = ", load average %.1f" % os.getloadavg()[0]
  except OSError:
    load = ""
  return (f"{platform.processor() or platform.machine()}, {cores} logical CPUs{load}; "
          f"jax {jax.__version__}, backend {jax.default_backend()}, "
          f"devices {[d.device_kind for d in jax.local_devices()][:1]}")


def write(rows: list[dict], path: pathlib.Path = RESULTS) -> str:
  lines = [
      "# Vision models: images/s (benchmarks/vision.py)", "",
      f"Date: {datetime.date.today().isoformat()}. Machine: {_machine()}.", "",
      "Median of the timed calls after one untimed (compiling) call; float32; eval forward "
      "and forward+backward (gradient of the summed logits, train-mode BatchNorm, no "
      "optimiser). CPU timings on a shared VM depend on its load (above).", "",
      f"## {jax.default_backend().upper()}", "",
      "| model | params | batch x size | forward img/s (s/call) | fwd+bwd img/s (s/call) |"
      " first fwd / fwd+bwd call (compile) s |",
      "|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['model']} | {r['params']:,} | {r['batch']} x {r['size']} | "
                 f"{r['fwd_ips']:.1f} ({r['fwd_s']:.2f}) | {r['bwd_ips']:.1f} ({r['bwd_s']:.2f}) | "
                 f"{r['fwd_first_s']:.0f} / {r['bwd_first_s']:.0f} |")
  if jax.default_backend() == "cpu":
    lines += ["", "## GPU", "", "Not measured: no GPU lent in this session."]
  text = "\n".join(lines) + "\n"
  path.write_text(text)
  return text


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--models", default="SViT-S,BiFormer-T")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--size", type=int, default=224)
  p.add_argument("--repeats", type=int, default=3)
  args = p.parse_args(argv)
  rows = []
  for name in args.models.split(","):
    rows.append(measure(name, args.batch, args.size, args.repeats))
    print(rows[-1], flush=True)
  print(write(rows))


if __name__ == "__main__":
  main()
