"""Fixtures shared by the project tests: executing a project's colab.ipynb at smoke settings, and
models built abstractly and filled from numpy (`build`).

Initialising a model for real (eagerly or under jit) compiles every random initialiser, which
costs far more CPU than a behavioural test itself; `build` fills an nnx.eval_shape model with
random but well-scaled values instead.
"""
import json
import os
import pathlib

import jax.numpy as jnp
import nbformat
import numpy as np
import pytest
from flax import nnx
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


def materialise(build, seed: int = 0):
  """Returns the module `build()` makes, with random but well-scaled values, cheaply."""
  model = nnx.eval_shape(build)
  rng = np.random.default_rng(seed)
  new = []
  for path, var in nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))):
    shape, name = tuple(var.shape), path[-1]
    if name == "var":
      value = rng.uniform(0.5, 1.5, shape)
    elif name == "scale":
      value = 1.0 + 0.1 * rng.standard_normal(shape)
    else:
      fan_in = max(1, int(np.prod(shape[:-1])) if len(shape) > 1 else 1)
      value = rng.standard_normal(shape) / np.sqrt(fan_in)
    new.append((path, var.replace(jnp.asarray(value, var.dtype))))
  nnx.update(model, nnx.from_flat_state(new))
  return model


@pytest.fixture(scope="session")
def build():
  """build(factory, seed=0) -> the module `factory()` makes, filled by `materialise`."""
  return materialise
