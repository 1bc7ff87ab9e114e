"""The optional inputs every block-sparse impl takes beside q, k, v: segment ids and Shaw tables.

`Extras` carries them from the op (block_sparse_attention) to its XLA path and Pallas bodies in
one internal layout:

* q_segment_ids int32 [B, Tq], kv_segment_ids int32 [B, Tk] (both or neither);
* rel_keys, rel_values float32 [Ht, R, D], Ht = 1 (one table for every head) or H (one per
  query head), R = 2 * max_distance + 1 (relative_positions.py has the semantics).

`table` puts a user's table ([R, D] or [H, R, D], any float dtype) in that layout; it is
differentiable, so the f32 [Ht, R, D] gradients the impls return reach the user's table in its
own shape and dtype.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from common.kernels import pallas_support


class Extras(NamedTuple):
  q_segment_ids: Any = None
  kv_segment_ids: Any = None
  rel_keys: Any = None
  rel_values: Any = None

  @property
  def segments(self) -> bool:
    return self.q_segment_ids is not None

  @property
  def relative(self) -> bool:
    return self.rel_keys is not None or self.rel_values is not None

  @property
  def max_distance(self) -> int:
    table = self.rel_keys if self.rel_keys is not None else self.rel_values
    return (table.shape[-2] - 1) // 2


def table(t, like=()):
  """A user's [R, D] / [H, R, D] table -> f32 [Ht, R, D] (None stays None).

  Inside shard_map(check_vma=True) the copy is marked as varying like the arrays in `like`
  (q, k, v): the op's backward returns the table's gradient with their varying axes, and the
  transpose of this mark is the psum over the axes the user's table is replicated on.
  """
  if t is None:
    return None
  t = jnp.asarray(t, jnp.float32)
  t = t[None] if t.ndim == 2 else t
  return pallas_support.varying_like(t, *like) if like else t


def table_grads(ext: Extras, parts: list) -> list:
  """The Pallas bodies' per-block table gradients -> one per table in `ext`'s layout.

  parts: for each table present, in (rel_keys, rel_values) order, f32 partial sums [.., H, R, D]
  with one leading axis (summed here); a shared table ([1, R, D]) also sums over heads. The
  result has None where a table is absent.
  """
  parts, grads = list(parts), []
  for t in (ext.rel_keys, ext.rel_values):
    if t is None:
      grads.append(None)
      continue
    part = parts.pop(0).sum(0)  # [H, R, D]
    grads.append(part.sum(0, keepdims=True) if t.shape[0] == 1 else part)
  return grads
