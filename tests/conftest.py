"""Test-wide setup: 8 forced CPU devices (for sharding tests) and a shared compilation cache.

XLA_FLAGS must be set before jax is first imported, which is why this lives in conftest.
Single-device tests simply use jax.devices()[0]; sharding tests build their own meshes.
"""
import os

os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests that build TFDS datasets share one cache per test session (see common.data.paths).
os.environ.setdefault("SPARSE_DATA_DIR", os.path.join(os.path.expanduser("~"), ".cache", "sparse_monorepo"))

import jax  # noqa: E402

jax.config.update("jax_threefry_partitionable", True)
