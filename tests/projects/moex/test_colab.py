"""The MoE-X notebook runs end to end at smoke settings: trains 'tiny', plots expert load and the
score-vs-L0 scatter, prints an expert's contexts and draws a unit's board-state heat map."""
import json
import pathlib

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_colab_notebook_executes(tmp_path, monkeypatch):
  monkeypatch.setenv("COLAB_SMOKE", "1")
  monkeypatch.setenv("COLAB_OUT", str(tmp_path))
  nb = nbformat.read(ROOT / "projects/moex/colab.ipynb", as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(ROOT)}}).execute()
  for png in ("routing.png", "board_map.png"):
    assert (tmp_path / png).stat().st_size > 1000
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert abs(sum(summary["load"]) - 1.0) < 1e-6 and len(summary["load"]) == 8
  assert -1.0 <= summary["score_l0_r"] <= 1.0
  assert len(summary["contexts"]) == 3
  assert 0 <= summary["board"]["coverage"] <= 1 and 0 <= summary["board"]["reconstruction"] <= 1
