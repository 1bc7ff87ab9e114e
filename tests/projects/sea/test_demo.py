"""The main-job demo at smoke settings: teacher, three students, dynamic k, one results table."""
import json

from projects.run_demos import COLUMNS
from projects.sea import demo


def test_quick_demo_returns_complete_rows(tmp_path):
  rows = demo.run(str(tmp_path), quick=True)
  print(json.dumps(rows, indent=1, ensure_ascii=False))
  assert len(rows) == 2 + 4 * len(demo.KINDS) + len(demo.DYNAMIC_K["tiny"])
  for r in rows:
    assert set(COLUMNS) <= set(r), r
    assert all(str(r[c]) for c in COLUMNS), r
    assert "nan" not in str(r["measured"]).lower(), r
  assert any("performer" in r["metric"] and "by construction" in r["measured"] for r in rows)
  # A second call reuses every run and the dynamic-k results: the same table.
  assert demo.run(str(tmp_path), quick=True) == rows


def test_distill_long_changes_only_the_students_steps():
  base = demo.student_config("performer", 2, quick=False)
  long = demo.student_config("performer", 2, quick=False, steps=1000)
  assert (base.train.num_steps, long.train.num_steps) == (100, 1000)
  assert long.seed == base.seed == 2
  assert long.model.to_dict() == base.model.to_dict() and long.data == base.data
