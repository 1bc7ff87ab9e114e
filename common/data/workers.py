"""Worker-process prefetching (`config.data.num_workers`), safe outside absl programs."""
from __future__ import annotations

import grain
from absl import flags


def maybe_workers(ds: grain.IterDataset, num_workers: int) -> grain.IterDataset:
  """`ds.mp_prefetch` with `num_workers` processes; `ds` itself when 0."""
  if not num_workers:
    return ds
  # grain's worker start-up reads absl flags; outside `app.run` (pytest, notebooks, plain
  # scripts) they are unparsed and it raises. Marking them parsed keeps every default.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  return ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
