"""Concatenate-then-split packing of token arrays, as a checkpointable grain IterDataset.

Why not grain's `ConcatThenSplitIterDataset`: its checkpoint state holds tuples that a JSON
round trip (which is how grain's Orbax handler stores iterator state) turns into lists, after
which a restored iterator believes it holds a remainder it does not. This packer's state is
plain JSON: the parent's state before the document being cut, and the offset into it.
"""
from __future__ import annotations

from typing import Any

import grain
import numpy as np


class PackIterDataset(grain.IterDataset):
  """Yields {'tokens': int32 [length], 'num_tokens': int} from a stream of 1-D token arrays.

  Documents are concatenated in order and cut every `length` tokens, so a document may span
  chunks. When the parent ends, the last partial chunk is padded with `pad_id` and
  `num_tokens` says how many tokens are real.
  """

  def __init__(self, parent: grain.IterDataset, length: int, pad_id: int = 0):
    super().__init__(parent)
    if length <= 0:
      raise ValueError(f"pack length must be positive, got {length}")
    self._length = length
    self._pad_id = pad_id

  def __iter__(self) -> grain.DatasetIterator:
    return _PackIterator(self._parent.__iter__(), self._length, self._pad_id)

  def __str__(self) -> str:
    return f"PackIterDataset(length={self._length})"


class _PackIterator(grain.DatasetIterator):

  def __init__(self, parent: grain.DatasetIterator, length: int, pad_id: int):
    super().__init__(parent)
    self._length = length
    self._pad_id = pad_id
    self._doc: np.ndarray | None = None
    self._doc_state: dict[str, Any] | None = None  # parent state just before self._doc
    self._offset = 0

  def _need_doc(self) -> bool:
    return self._doc is None or self._offset >= len(self._doc)

  def __next__(self) -> dict[str, Any]:
    pieces, need = [], self._length
    while need:
      if self._need_doc():
        state = self._parent.get_state()
        try:
          doc = next(self._parent)
        except StopIteration:
          self._doc = None
          break
        self._doc, self._doc_state, self._offset = np.asarray(doc, np.int32), state, 0
        continue
      take = min(need, len(self._doc) - self._offset)
      pieces.append(self._doc[self._offset:self._offset + take])
      self._offset += take
      need -= take
    if need == self._length:
      raise StopIteration
    tokens = np.full(self._length, self._pad_id, np.int32)
    real = self._length - need
    tokens[:real] = np.concatenate(pieces)
    return {"tokens": tokens, "num_tokens": real}

  def get_state(self) -> dict[str, Any]:
    if self._need_doc():
      return {"parent": self._parent.get_state(), "offset": 0}
    return {"parent": self._doc_state, "offset": self._offset}

  def set_state(self, state: dict[str, Any]) -> None:
    self._parent.set_state(state["parent"])
    self._doc, self._doc_state, self._offset = None, None, 0
    if state["offset"]:
      self._doc_state = state["parent"]
      self._doc = np.asarray(next(self._parent), np.int32)
      self._offset = int(state["offset"])
