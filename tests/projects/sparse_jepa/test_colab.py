"""The project's notebook runs end to end at smoke settings and produces its figures."""
import json
import os
import pathlib

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_colab_notebook_executes(tmp_path, monkeypatch):
  monkeypatch.setenv("COLAB_SMOKE", "1")
  monkeypatch.setenv("COLAB_OUT", str(tmp_path))
  # One CPU device in the kernel: the notebook shards nothing, and 8 forced devices (conftest)
  # would only make its compiles slower.
  flags = os.environ.get("XLA_FLAGS", "").split()
  monkeypatch.setenv("XLA_FLAGS", " ".join(
      f for f in flags if not f.startswith("--xla_force_host_platform_device_count")))
  nb = nbformat.read(ROOT / "projects/sparse_jepa/colab.ipynb", as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(ROOT)}}).execute()
  for name in ("masks.png", "training_curves.png", "probes.png"):
    assert (tmp_path / name).stat().st_size > 1000, name
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert set(summary["probes"]) == {"ijepa", "sparse_jepa"}
  for values in summary["probes"].values():
    assert 0.0 <= values["linear-probe accuracy"] <= 1.0
  assert 0.0 <= summary["latent_sparsity"]["active_units"] <= 1.0
  for run in ("ijepa", "sparse_jepa"):
    assert (tmp_path / "runs" / run / "metrics.jsonl").exists()
