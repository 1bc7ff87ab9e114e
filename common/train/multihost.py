"""Starting JAX on several processes (TPU pod slices, multi-GPU nodes, CPU test clusters).

`initialize` must run before anything touches devices. Three ways a run becomes multi-process:
  * explicit: coordinator address, process count and index (flags of common.train.main);
  * a TPU VM pod slice (TPU_WORKER_HOSTNAMES lists several workers), or --multihost: JAX finds
    the coordinator and the process index from the environment (also Slurm and Open MPI);
  * otherwise the run is single-process and nothing is initialised.
On CPU, cross-process collectives go through gloo (jax 0.10's default for
jax_cpu_collectives_implementation; set here so an older default cannot silently break them).
"""
from __future__ import annotations

import logging
import os
from typing import Sequence


def tpu_pod_environment() -> bool:
  """True on a worker of a multi-host TPU VM slice."""
  return os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") > 0


def initialize(*, coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, local_device_ids: Sequence[int] | None = None,
               from_environment: bool = False) -> bool:
  """Initialises jax.distributed when the arguments or the environment ask for it.

  Returns whether it did. Half-given explicit settings are an error, not a silent
  single-process run that would later hang waiting for its peers.
  """
  import jax
  explicit = (coordinator_address, num_processes, process_id)
  if any(v is not None for v in explicit):
    missing = [n for n, v in zip(("--coordinator_address", "--num_processes", "--process_id"),
                                 explicit) if v is None]
    if missing:
      raise ValueError(f"multi-process launch needs --coordinator_address, --num_processes and "
                       f"--process_id together; missing {missing}.")
    if not 0 <= process_id < num_processes:
      raise ValueError(f"--process_id={process_id} is not in [0, --num_processes="
                       f"{num_processes}).")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id,
                               local_device_ids=local_device_ids)
  elif from_environment or tpu_pod_environment():
    jax.distributed.initialize(local_device_ids=local_device_ids)
  else:
    return False
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
  return True
