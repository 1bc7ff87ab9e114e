"""The project's notebook runs end to end at smoke settings and produces its figures."""
import json
import pathlib

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[3]
GOLDEN = ROOT.parent / "shared" / "golden" / "biformer" / "tiny_s0"


def test_colab_notebook_executes(tmp_path, monkeypatch):
  monkeypatch.setenv("COLAB_SMOKE", "1")
  monkeypatch.setenv("COLAB_OUT", str(tmp_path))
  nb = nbformat.read(ROOT / "projects/biformer/colab.ipynb", as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(ROOT)}}).execute()
  assert (tmp_path / "routed_regions.png").stat().st_size > 1000
  assert (tmp_path / "training_loss.png").stat().st_size > 1000
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert 0.0 <= summary["accuracy"]["biformer"] <= 1.0
  assert summary["n_win"] == 4 and summary["routed_per_query"] == 4  # top-4 of 16 regions
  if GOLDEN.is_dir():
    assert summary["golden_max_error"] <= 2e-5
