"""Device mesh from the config: named axes, one of which may be -1 (fills the remaining devices)."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh


def resolve_shape(shape: Mapping[str, int], num_devices: int) -> dict[str, int]:
  """Replaces a single -1 by whatever makes the product equal `num_devices`."""
  sizes = dict(shape)
  for name, size in sizes.items():
    if not isinstance(size, int) or (size < 1 and size != -1):
      raise ValueError(f"config.mesh.shape.{name}={size!r}: each axis size must be a positive "
                       "int, or -1 for 'all remaining devices'.")
  fills = [n for n, s in sizes.items() if s == -1]
  if len(fills) > 1:
    raise ValueError(f"config.mesh.shape={dict(shape)}: only one axis may be -1, got {fills}.")
  fixed = math.prod(s for s in sizes.values() if s != -1)
  if fills:
    if num_devices % fixed:
      raise ValueError(
          f"config.mesh.shape={dict(shape)}: the fixed axes multiply to {fixed}, which does not "
          f"divide the {num_devices} available devices; choose sizes whose product divides "
          f"{num_devices}.")
    sizes[fills[0]] = num_devices // fixed
  elif fixed != num_devices:
    raise ValueError(
        f"config.mesh.shape={dict(shape)} has {fixed} devices but {num_devices} are available; "
        "set one axis to -1 to fill, or make the product equal the device count.")
  return sizes


def make_mesh(shape: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Builds a Mesh whose axes are in config order.

  jax.make_mesh lays devices out for fast collectives on TPU/GPU slices; for an explicit device
  list (tests, sub-meshes) a plain reshape is used.
  """
  devices = list(jax.devices()) if devices is None else list(devices)
  sizes = resolve_shape(shape, len(devices))
  names, dims = tuple(sizes), tuple(sizes.values())
  # Auto axes: XLA's sharding propagation places intermediates, so model code needs no
  # per-op sharding annotations (Explicit axes would require them on every reshape).
  axis_types = (AxisType.Auto,) * len(names)
  if len(devices) == jax.device_count():
    try:
      return jax.make_mesh(dims, names, axis_types=axis_types, devices=devices)
    except (TypeError, ValueError, NotImplementedError):
      pass
  return Mesh(np.asarray(devices, dtype=object).reshape(dims), names, axis_types=axis_types)
