"""The one way to shared/golden: absent data skips a developer's run and fails CI's."""
import pytest

from tests import golden


def test_absent_golden_data_skips_locally_and_fails_under_ci(monkeypatch, tmp_path):
  monkeypatch.setattr(golden, "ROOT", tmp_path / "missing")
  assert golden.cases("stvit") == []
  monkeypatch.setenv("CI", "false")
  with pytest.raises(pytest.skip.Exception, match="golden data absent"):
    golden.folder("stvit")
  monkeypatch.setenv("CI", "true")
  with pytest.raises(pytest.fail.Exception, match="under CI this is an error"):
    golden.folder("stvit")


def test_present_golden_data_is_found():
  assert golden.folder("stvit").is_dir() and golden.cases("stvit")
