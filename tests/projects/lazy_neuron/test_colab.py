"""The project's notebook runs end to end at smoke settings and produces its figures."""
import json
import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_colab_notebook_executes(tmp_path, monkeypatch):
  monkeypatch.setenv("COLAB_SMOKE", "1")
  monkeypatch.setenv("COLAB_OUT", str(tmp_path))
  nb = nbformat.read(ROOT / "projects/lazy_neuron/colab.ipynb", as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(ROOT)}}).execute()
  assert (tmp_path / "sparsity_over_training.png").stat().st_size > 1000
  assert (tmp_path / "calibration_robustness.png").stat().st_size > 1000
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert set(summary) == {"relu", "topk", "gelu"}
  # The top-k run keeps at most k of d_ff activations per token.
  assert summary["topk"]["act_nonzero"] <= summary["relu"]["act_nonzero"]
