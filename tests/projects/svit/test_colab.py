"""The project's notebook runs end to end at smoke settings and produces its figures."""
import json
import os
import pathlib

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[3]
GOLDEN = ROOT.parent / "shared" / "golden" / "stvit" / "tiny_s0"


def test_colab_notebook_executes(tmp_path, monkeypatch):
  monkeypatch.setenv("COLAB_SMOKE", "1")
  monkeypatch.setenv("COLAB_OUT", str(tmp_path))
  nb = nbformat.read(ROOT / "projects/svit/colab.ipynb", as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(ROOT)}}).execute()
  assert (tmp_path / "super_tokens.png").stat().st_size > 1000
  assert (tmp_path / "training_loss.png").stat().st_size > 1000
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert 0.0 <= summary["accuracy"]["svit"] <= 1.0
  assert summary["stage0_grid"] == [2, 2]  # 32x32 input, stride-4 stem, 4x4-pixel super tokens
  if GOLDEN.is_dir():
    assert summary["golden_max_error"] <= 2e-5
