"""What the evaluators share: the default forward pass and masked sums over a split.

An evaluator jits one per-batch function that returns *sums* already weighted by the batch's
"mask" (0 for padding examples), and adds them up on the host in float64. Dividing only at the
end makes the result independent of how the split was cut into batches, including the padded
last batch.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import jax
import numpy as np
from flax import nnx

import common  # noqa: F401  (library-wide flax settings)

Forward = Callable[[nnx.Module, Mapping[str, Any]], jax.Array]
BatchSums = Callable[..., Mapping[str, jax.Array]]


def image_logits(model: nnx.Module, batch: Mapping[str, Any]) -> jax.Array:
  """The default forward: a classifier called on batch['image'] in inference mode."""
  return model(batch["image"])


def clean_forward(forward: Forward, model: nnx.Module, batch: Mapping[str, Any]) -> jax.Array:
  """`forward(model, batch)`, discarding whatever the model sows (e.g. MLP statistics).

  Sown values left on the model would change its graph on every batch, so a jitted step would
  retrace each time and the model would carry them out of the evaluator.
  """
  out = forward(model, batch)
  nnx.pop(model, nnx.Intermediate)
  return out


def as_splits(splits: str | Sequence[str]) -> tuple[str, ...]:
  """Accepts one split name or several."""
  return (splits,) if isinstance(splits, str) else tuple(splits)


def sum_batches(step: BatchSums, model: nnx.Module, batches: Iterable[Mapping[str, Any]],
                *extra: Any) -> dict[str, np.ndarray]:
  """Calls `step(model, batch, i, *extra)` per batch and adds the returned sums on the host."""
  totals: dict[str, np.ndarray] = {}
  for i, batch in enumerate(batches):
    sums = jax.device_get(step(model, batch, np.int32(i), *extra))
    for name, value in sums.items():
      totals[name] = totals.get(name, 0.0) + np.asarray(value, np.float64)
  return totals


def split_sums(step: BatchSums, model: nnx.Module, ctx: Any, splits: Sequence[str],
               max_batches: int | None, *extra: Any) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
  """(split, its `sum_batches` totals) for each split, over `ctx.batches(split, max_batches=...)`
  (None: the config's eval.max_batches): the loop of every evaluator built on masked sums."""
  for split in splits:
    yield split, sum_batches(step, model, ctx.batches(split, max_batches=max_batches), *extra)


def safe_ratio(numerator: np.ndarray, count: np.ndarray | float) -> float:
  """numerator / count as a python float, NaN for an empty split (nothing to average)."""
  count = float(count)
  return float(numerator) / count if count > 0 else float("nan")
