"""The SEA notebook runs end to end at smoke settings and plots true vs estimated attention."""
import json
import pathlib

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_colab_notebook_executes(tmp_path, monkeypatch):
  monkeypatch.setenv("COLAB_SMOKE", "1")
  monkeypatch.setenv("COLAB_OUT", str(tmp_path))
  nb = nbformat.read(ROOT / "projects/sea/colab.ipynb", as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(ROOT)}}).execute()
  assert (tmp_path / "attention_maps.png").stat().st_size > 1000
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["seq_len"] == 64
  assert summary["kl"] > 0 and 0 < summary["kept_fraction"] < 1
