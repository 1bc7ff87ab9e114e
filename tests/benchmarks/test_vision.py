"""benchmarks/vision.py: the served-worker protocol it interleaves with, and its table."""
import argparse
import types

import pytest

from benchmarks import harness, vision

WORKER = '''
import sys
from benchmarks import harness

def setup(cfg):
  print("a model printing while it builds")  # must not reach the protocol
  if cfg.get("fail"):
    raise ValueError("no such model: " + cfg["fail"])
  calls = {"add": lambda: sum(range(1000)), "nothing": lambda: None}
  return {"params": 7}, {m: calls[m] for m in cfg["modes"]}

harness.serve(setup)
'''


def test_served_worker_times_each_request_and_reports_its_failure(tmp_path):
  script = tmp_path / "worker.py"
  script.write_text(WORKER)
  worker = harness.Served(str(script), {"modes": ["add", "nothing"]}, harness.repo_env())
  try:
    assert worker.info["params"] == 7 and set(worker.info["first_s"]) == {"add", "nothing"}
    times = [worker.time(m) for m in ("add", "nothing", "add")]
    assert all(t >= 0 for t in times)
  finally:
    worker.close()
  assert worker.proc.returncode == 0
  with pytest.raises(RuntimeError, match=r"no such model: X \(File .*worker.py.*line \d+"):
    harness.Served(str(script), {"modes": ["add"], "fail": "X"}, harness.repo_env())


def _row(model, torch=True):
  info = {"ours": {"params": 10, "step_flops": 4e9}}
  median = {("ours", "train_step"): 2.0, ("ours", "forward"): 0.5, ("ours", "matmul"): 0.2}
  if torch:
    info["torch"] = {"params": 10, "version": "torch 9.9"}
    median.update({("torch", "train_step"): 3.0, ("torch", "forward"): 0.25,
                   ("torch", "matmul"): 0.1})
  return dict(model=model, info=info, median=median, best=dict(median), torch_error=None)


def test_table_gives_relative_speed_and_peak_share_and_says_when_torch_is_absent():
  args = argparse.Namespace(batch=8, size=224, rounds=3, dtype="float32",
                            torch_python="/x/python")
  text = vision.render([_row("SViT-S")], args, 0.5, 1.0)
  row = next(line for line in text.splitlines() if line.startswith("| SViT-S"))
  cells = [c.strip() for c in row.split("|")[1:-1]]
  assert cells[2:5] == ["2.00 s", "3.00 s", "1.50x"]      # ours faster at training
  assert cells[5:8] == ["0.50 s", "0.25 s", "0.50x"]      # and half as fast at inference
  # 4 GFLOP in 2 s against a 2 * 2048^3 / 0.2 s peak, and in 3 s against half that time.
  peak = 2 * vision.MATMUL ** 3
  ours, theirs = 100 * 4e9 / 2.0 / (peak / 0.2), 100 * 4e9 / 3.0 / (peak / 0.1)
  assert cells[8] == f"{ours:.0f}% / {theirs:.0f}%"
  assert "torch 9.9" in text and "224, float32," in text
  args.torch_python = None
  text = vision.render([_row("ViT-B/16", torch=False)], args, 0.5, 1.0)
  assert "| 2.00 s | - | - |" in text and "PyTorch reference: not run" in text


def test_unknown_model_is_one_clear_line(capsys):
  with pytest.raises(SystemExit, match="unknown --models"):
    vision.main(["--models", "ResNet-50"])


def test_flops_falls_back_to_the_compiled_step_then_to_nan():
  """A GPU run of jax 0.11 once failed on the lowered step's cost analysis (None there)."""
  compiled = types.SimpleNamespace(cost_analysis=lambda: [{"flops": 7.0}])
  lowered = types.SimpleNamespace(cost_analysis=lambda: None, compile=lambda: compiled)
  assert vision._flops(lowered) == 7.0
  compiled.cost_analysis = lambda: None
  assert vision._flops(lowered) != vision._flops(lowered)      # NaN: no count anywhere
  lowered.cost_analysis = lambda: {"flops": 3.0}
  assert vision._flops(lowered) == 3.0
