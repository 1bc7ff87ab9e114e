"""Fixtures shared by the project tests: executing a project's colab.ipynb at smoke settings."""
import json
import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def run_colab(tmp_path, monkeypatch):
  """run_colab(project, figures=(...), single_device=False) -> the notebook's summary.json.

  The notebook runs in a fresh kernel from the repo root with COLAB_SMOKE=1 (small settings)
  and COLAB_OUT=tmp_path; every name in `figures` must be a non-trivial PNG it wrote there.
  `single_device` drops the 8 forced CPU devices (tests/conftest.py) in the kernel, for
  notebooks that shard nothing and would only compile slower.
  """
  def run(project: str, *, figures: tuple[str, ...] = (), single_device: bool = False) -> dict:
    monkeypatch.setenv("COLAB_SMOKE", "1")
    monkeypatch.setenv("COLAB_OUT", str(tmp_path))
    if single_device:
      flags = os.environ.get("XLA_FLAGS", "").split()
      monkeypatch.setenv("XLA_FLAGS", " ".join(
          f for f in flags if not f.startswith("--xla_force_host_platform_device_count")))
    nb = nbformat.read(ROOT / "projects" / project / "colab.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    for name in figures:
      assert (tmp_path / name).stat().st_size > 1000, name
    return json.loads((tmp_path / "summary.json").read_text())
  return run
