"""The Monet notebook runs end to end at smoke settings: trains 'tiny', plots routing statistics,
prints expert examples and the masking result."""
import json
import pathlib

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_colab_notebook_executes(tmp_path, monkeypatch):
  monkeypatch.setenv("COLAB_SMOKE", "1")
  monkeypatch.setenv("COLAB_OUT", str(tmp_path))
  nb = nbformat.read(ROOT / "projects/monet/colab.ipynb", as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(ROOT)}}).execute()
  assert (tmp_path / "routing_mass.png").stat().st_size > 1000
  assert (tmp_path / "masking.png").stat().st_size > 1000
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert [r["target"] for r in summary["masking"]] == ["codecs", "async", "email", "gui"]
  assert set(summary["examples"]) == {"codecs", "async", "email", "gui"}
  assert all(len(e["contexts"]) == 3 for e in summary["examples"].values())
