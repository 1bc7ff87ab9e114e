"""benchmarks/long_context.py at tiny sizes: the kernel rows, and the PyTorch reference's skip.

Nothing here checks a time: the script runs one worker process per (layer, n) at n = 256 with one
repeat, and the tests read its markdown tables (~45 s on 2 cores, most of it jax start-up and
compiles in the workers).
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

from benchmarks import long_context

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "long_context.py"


def _table(text, heading):
  """{(layer, n): {column: cell}} of the table under `heading` in the script's output."""
  lines = text.splitlines()
  start = lines.index(heading)
  start = next(i for i in range(start, len(lines)) if lines[i].startswith("| layer |"))
  header = [c.strip() for c in lines[start].strip("|").split("|")]
  rows = {}
  for line in lines[start + 2:]:
    if not line.startswith("|"):
      break
    row = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
    rows[(row["layer"], int(row["n"]))] = row
  return rows


def test_kernel_index_lists_are_causal_distinct_and_of_fixed_width():
  for op, n, unit in (("block", 8192, long_context.LOCAL_BLOCK), ("row", 2048, 1)):
    idx = long_context.kernel_indices(op, n, np)
    width = len(long_context.BLOCK_OFFSETS if op == "block" else long_context.ROW_OFFSETS)
    assert idx.shape == (n // unit, width) and idx.dtype == np.int32
    rows = np.arange(n // unit)[:, None]
    assert ((idx == -1) | ((idx >= 0) & (idx <= rows))).all(), op  # causal
    for r in idx:
      listed = r[r >= 0]
      assert len(set(listed.tolist())) == len(listed), op  # no entry twice
    assert (idx[-1] >= 0).all(), op  # far from the start, every slot is used


def test_kernel_rows_run_and_torch_python_without_torch_is_skipped(capsys):
  # One op with both features: each row is a fresh worker process, and the row_* variants take
  # the same script path with the other op.
  layers = ["block", "block_gqa", "block_seg"]
  assert set(layers) < set(long_context.KERNEL_LAYERS)
  text = long_context.main(["--lengths", "256", "--repeats", "1", "--layers",
                            ",".join(layers + ["routing_torch"]),
                            "--torch_python", "/nonexistent/python"])
  skip = ("PyTorch reference: not run: torch / routing_transformer do not import in "
          "/nonexistent/python")
  assert skip in text and skip in capsys.readouterr().err
  for mode in long_context.MODES:
    rows = _table(text, f"### {mode}")
    assert sorted(rows) == sorted((layer, 256) for layer in layers), mode  # no torch rows
    for layer in layers:
      row = rows[(layer, 256)]
      assert row["note"] == "", row
      assert float(row["median (ms)"]) > 0 and row["XLA total"].endswith("iB"), row
      assert row["sparsity"].startswith("8 blocks" if layer.startswith("block") else "64 keys")
    assert "H_kv=1" in rows[("block_gqa", 256)]["sparsity"]
    assert "4 segments" in rows[("block_seg", 256)]["sparsity"]
  ratios = _table(text, "### Kernel features: cost relative to the plain op (same n, same pass)")
  assert sorted(ratios) == sorted(
      (layer, 256) for layer in layers if layer != "block")
  for row in ratios.values():
    float(row["time / plain (median)"])
    float(row["XLA total / plain"])


def test_python_without_torch_reports_one_line_and_exits_zero():
  # This venv has jax but no torch: the script says so and exits 0 with an empty table.
  proc = subprocess.run(
      [sys.executable, str(SCRIPT), "--lengths", "256", "--layers", "routing_torch",
       "--torch_python", sys.executable],
      capture_output=True, text=True, check=False, timeout=120, cwd=ROOT,
      env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode == 0, proc.stderr[-2000:]
  skipped = [ln for ln in proc.stderr.splitlines() if "PyTorch reference: not run" in ln]
  assert len(skipped) == 1 and sys.executable in skipped[0], proc.stderr[-2000:]
  assert "| routing_torch |" not in proc.stdout


def test_torch_worker_imports_no_jax():
  # The routing_torch worker under a venv without jax: block jax, flax, numpy and the repo's
  # packages, so the first import it misses must be torch's.
  cfg = dict(layer="routing_torch", modes=["fwd"], n=256, heads=4, head_dim=64,
             routing_heads=2, routing_rule="sqrt", repeats=1, device="cpu")
  code = ("import runpy, sys\n"
          "for name in ('jax', 'jaxlib', 'flax', 'numpy', 'common', 'projects', 'torch'):\n"
          "  sys.modules[name] = None\n"
          f"sys.argv = [{str(SCRIPT)!r}, '--worker', {json.dumps(cfg)!r}]\n"
          f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        check=False, timeout=60, cwd=ROOT,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode != 0
  last = proc.stderr.strip().splitlines()[-1]
  assert "import of torch halted" in last, proc.stderr[-2000:]


def test_routing_nopos_is_the_routing_layer_without_shaw_tables():
  import jax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  cfg = dict(n=256, heads=4, head_dim=64, routing_heads=2, routing_rule="sqrt")
  count = lambda layer: len(jax.tree.leaves(nnx.state(layer, nnx.Param)))
  full = long_context._build_routing(cfg, nnx.Rngs(0))
  bare = long_context._build_routing(cfg, nnx.Rngs(0), relative=False)
  assert full.local_rel_k is not None and bare.local_rel_k is None
  assert count(full) == count(bare) + 4   # keys and values tables, local and routing heads
