"""The Routing Transformer notebook runs end to end at smoke settings: trains 'tiny', plots the
clusters, the centroid usage and the attention maps, and samples bytes."""
import json
import pathlib

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_colab_notebook_executes(tmp_path, monkeypatch):
  monkeypatch.setenv("COLAB_SMOKE", "1")
  monkeypatch.setenv("COLAB_OUT", str(tmp_path))
  nb = nbformat.read(ROOT / "projects/routing_transformer/colab.ipynb", as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(ROOT)}}).execute()
  for name in ("clusters.png", "usage.png", "attention.png"):
    assert (tmp_path / name).stat().st_size > 1000, name
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["steps"] == 4 and len(summary["train_bits_per_byte"]) == 4
  # Counts recovered from the EMA are the batch's tokens, every step.
  assert summary["counts_per_step"] == [summary["tokens_per_step"]] * 4
  assert abs(sum(summary["final_share"]) - 1) < 1e-6
  assert summary["prompt_kept"] and summary["sample_len"] == 48
  assert summary["local_rows_sum_to_one"]
