"""Block-size and chunk-size choice for the sparse-attention kernels and XLA paths."""
from __future__ import annotations

import math


def choose_block_size(length: int, *, preferred: int = 128,
                      multiple_of: int = 8, arg_name: str = "length") -> int:
  """Largest block <= `preferred` that divides `length` and is a multiple of `multiple_of`.

  Block-sparse indices are defined on blocks, so callers that route (BiFormer
  regions, Routing Transformer clusters) pick the block size once, here, and
  pass it to both the router and the op.

  Args:
    length: the sequence length to tile.
    preferred: the largest block wanted (128 suits TPU lanes and GPU tiles).
    multiple_of: every block must be a multiple of this (8 = TPU sublanes).
    arg_name: the name used in the error message.

  Returns:
    The block size. When `length <= preferred` the whole length is one block.

  Raises:
    ValueError: if no such block exists.
  """
  if not isinstance(length, int) or length <= 0:
    raise ValueError(f"{arg_name}={length!r} must be a positive int.")
  if length <= preferred:
    return length
  for block in range(preferred - preferred % multiple_of, 0, -multiple_of):
    if length % block == 0:
      return block
  raise ValueError(
      f"{arg_name}={length} has no divisor <= {preferred} that is a multiple of "
      f"{multiple_of}; pad the sequence to a multiple of {multiple_of}.")


def next_power_of_2(n: int) -> int:
  return 1 if n <= 1 else 1 << (n - 1).bit_length()


def choose_num_chunks(n: int, bytes_per_item: int, budget_bytes: int) -> int:
  """Smallest divisor `c` of `n` so that `n / c` items fit in `budget_bytes`.

  The XLA paths scan over `c` chunks of `n / c` query blocks (or queries); a
  divisor keeps every chunk the same shape, so the scan body compiles once.
  """
  want = max(1, math.ceil(n * bytes_per_item / max(budget_bytes, 1)))
  for c in range(want, n + 1):
    if n % c == 0:
      return c
  return n
