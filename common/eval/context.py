"""What an evaluator sees: the config, the task, the mesh, and sharded evaluation batches."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator

import jax
import numpy as np


@dataclasses.dataclass
class EvalContext:
  config: Any
  task: Any
  mesh: jax.sharding.Mesh | None = None
  # Maps a per-process numpy batch to global jax arrays on the mesh (set by the trainer).
  put_batch: Callable[[dict], dict] | None = None

  def batches(self, split: str, *, max_batches: int | None = None) -> Iterator[dict]:
    """Yields one ordered pass over `split` as global arrays; every batch has a float "mask"."""
    limit = max_batches if max_batches is not None else (self.config.eval.get("max_batches", 0) or None)
    it = self.task.eval_data(split, process_index=jax.process_index(),
                             process_count=jax.process_count(),
                             batch_size=self.config.eval.batch_size // jax.process_count())
    put = self.put_batch or (lambda b: jax.tree.map(jax.numpy.asarray, b))
    for i, batch in enumerate(it):
      if limit is not None and i >= limit:
        break
      if "mask" not in batch:
        first = next(iter(batch.values()))
        batch = dict(batch, mask=np.ones(first.shape[0], np.float32))
      yield put(batch)
