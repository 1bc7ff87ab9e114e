"""Test-wide setup: 8 forced CPU devices (for sharding tests) and a shared compilation cache.

XLA_FLAGS must be set before jax is first imported, which is why this lives in conftest.
Single-device tests simply use jax.devices()[0]; sharding tests build their own meshes.

The compilation cache is XLA's persistent cache in one fresh folder per test run, shared by the
xdist workers and by every subprocess they start (notebook kernels, `main.py` launches) through
the environment: many tests compile the same tiny models, and only the first pays. A fresh
folder per run keeps every run, CI's included, independent of earlier ones.
"""
import os
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
# Tests run tiny shapes, so compiling is most of their time: LLVM without its optimisation
# passes compiles about twice as fast (same results; slower code only at sizes tests never use).
if "xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_backend_optimization_level=0"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests that build TFDS datasets share one cache per test session (see common.data.paths).
os.environ.setdefault("SPARSE_DATA_DIR", os.path.join(os.path.expanduser("~"), ".cache", "sparse_monorepo"))

# The first process to get here (xdist's controller) names the folder; the workers and their
# subprocesses inherit it. A cache the user set up is used as it is and never deleted.
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _OWN_CACHE = tempfile.mkdtemp(prefix="sparse-tests-xla-cache-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
# Compiles shorter than this are cheaper to redo than to write and read back.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402

jax.config.update("jax_threefry_partitionable", True)


def pytest_sessionfinish(session):
  if _OWN_CACHE and not hasattr(session.config, "workerinput"):  # after every worker is done
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)
