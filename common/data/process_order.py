"""Which examples of the global training stream each process reads.

The rule (the same for every pipeline, and for tasks that bring their own data): there is ONE
global stream, shuffled with the run seed, with per-example randomness keyed by the example's
position in that stream. Global batch k is positions [k*B, (k+1)*B) of it (B = the global batch
size), and process p of n reads the contiguous block [k*B + p*b, k*B + (p+1)*b) of that batch
(b = B / n, its local batch).

Why blocks and not a stride (positions p, p+n, ...): `jax.make_array_from_process_local_data`
lays process p's rows after those of processes 0..p-1 when, as on every mesh `common.train.mesh`
builds, a process's devices are contiguous along the batch axes. With blocks the assembled
global batch is then the single-process batch row for row, so per-row randomness inside the
step (dropout masks drawn for the whole batch) is identical too, not just the set of examples.

Two consequences the trainer relies on:
  * the global batch at step k does not depend on the process count, so a run on 2 hosts and
    one on 1 host see the same data, and the loss curves agree to float rounding;
  * a local iterator's position is "global batches consumed", identical on every process, so a
    checkpoint written by n processes restores the data position exactly on m processes.
"""
from __future__ import annotations

from typing import Any

import grain
import numpy as np


def check_share(process_index: int, process_count: int, local_batch: int) -> None:
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} is not in [0, process_count="
                     f"{process_count}).")
  if local_batch < 1:
    raise ValueError(f"local batch size {local_batch} is not allowed: a positive integer "
                     "(config.train.batch_size / number of processes).")


def global_position(local_index: int, *, process_index: int, process_count: int,
                    local_batch: int) -> int:
  """Position in the global stream of this process's `local_index`-th example."""
  batch, row = divmod(local_index, local_batch)
  return (batch * process_count + process_index) * local_batch + row


class ProcessShare(grain.MapDataset):
  """Process `process_index`'s blocks of a global (usually infinite, repeated) MapDataset.

  Lazily indexed, like every MapDataset: a process reads and transforms only its own examples,
  so data loading does not grow with the number of hosts.
  """

  def __init__(self, parent: grain.MapDataset, *, process_index: int, process_count: int,
               local_batch: int):
    super().__init__(parent)
    check_share(process_index, process_count, local_batch)
    self._index = process_index
    self._count = process_count
    self._local = local_batch
    self._length = (len(parent) // (local_batch * process_count)) * local_batch

  def __len__(self) -> int:
    return self._length

  def _position(self, index: int) -> int:
    return global_position(index, process_index=self._index, process_count=self._count,
                           local_batch=self._local)

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    return self._parent[self._position(index)]

  def __str__(self) -> str:
    return (f"ProcessShare(process={self._index}/{self._count}, "
            f"local_batch={self._local})")


def local_share(ds: grain.MapDataset, *, process_index: int, process_count: int,
                local_batch: int) -> grain.MapDataset:
  """`ds` itself on one process (nothing to select), else this process's `ProcessShare`."""
  if process_count == 1:
    return ds
  return ProcessShare(ds, process_index=process_index, process_count=process_count,
                      local_batch=local_batch)


class BlockOfBatch:
  """Maps a GLOBAL batch (dict of arrays with B rows) to this process's b-row block.

  For streams that cannot be indexed (packed text), every process reads the whole global
  batch and keeps its block; costlier than `ProcessShare`, but the same examples.
  """

  def __init__(self, process_index: int, process_count: int):
    self.process_index = process_index
    self.process_count = process_count

  def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for key, value in batch.items():
      rows = value.shape[0] // self.process_count
      out[key] = value[self.process_index * rows:(self.process_index + 1) * rows]
    return out
