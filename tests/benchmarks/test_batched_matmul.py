"""benchmarks/batched_matmul.py at a tiny shape: both jax workers time it, a missing torch is
named, and a malformed shape is refused in one line. Nothing here checks a time."""
from __future__ import annotations

import sys

import pytest

from benchmarks import batched_matmul


def test_table_has_both_jax_columns_and_names_a_missing_torch(capsys):
  # The CI interpreter has no torch: its worker fails to start and the run goes on.
  python = sys.executable
  batched_matmul.main(["--shapes", "2x8x4x8,1x16x8x4", "--repeats", "1", "--inner", "1",
                       "--torch_python", python])
  out = capsys.readouterr().out
  rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()
          if line.startswith("| ") and "@" in line and "B x" not in line]
  assert [r[0] for r in rows] == ["2 x [8 x 4] @ [4 x 8]", "1 x [16 x 8] @ [8 x 4]"]
  assert [float(r[1]) for r in rows] == pytest.approx([2 * 2 * 8 * 4 * 8 / 1e6, 2 * 16 * 8 * 4 / 1e6])
  for r in rows:
    assert all(float(c) > 0 for c in r[2:6])  # jax and jax 1 cpu: ms and GFLOP/s
  try:
    import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    assert all(r[6:] == ["-", "-"] for r in rows)
    assert "torch: not timed (" in out


def test_malformed_shape_is_one_line():
  with pytest.raises(SystemExit, match=r"--shapes item '8x8' must be BxMxKxN"):
    batched_matmul.parse_shapes("2x4x4x4,8x8")
