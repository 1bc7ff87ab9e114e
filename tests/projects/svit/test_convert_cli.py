"""The converter CLI's argument handling, in-process and without running a model."""
import pathlib

import numpy as np
import pytest

import common  # noqa: F401
from projects.svit import convert as cli
from third_party.stvit import case as case_lib

GOLDEN = pathlib.Path(__file__).resolve().parents[3].parent / "shared" / "golden" / "stvit"


def test_required_arguments():
  with pytest.raises(SystemExit) as info:
    cli.main([])
  assert info.value.code == 2


def test_bad_case_folder_is_reported(tmp_path, capsys):
  assert cli.main(["--case", str(tmp_path / "nope"), "--out", str(tmp_path / "o.npz")]) == 2
  assert "is not a directory" in capsys.readouterr().err
  assert cli.main(["--case", str(tmp_path), "--out", str(tmp_path / "o.npz")]) == 2
  assert "lacks" in capsys.readouterr().err


def test_out_must_be_npz(tmp_path, capsys):
  assert cli.main(["--case", str(tmp_path), "--out", str(tmp_path / "o.txt")]) == 2
  assert "--out" in capsys.readouterr().err


def test_writes_outputs_and_checks(tmp_path, monkeypatch, capsys):
  """Conversion runs for real; the forward is replaced by the expected outputs (cheap)."""
  if not GOLDEN.is_dir():
    pytest.skip(f"golden data absent: {GOLDEN}")
  case_dir = sorted(p for p in GOLDEN.iterdir() if p.is_dir())[0]
  expected = case_lib.load_npz(str(case_dir / "outputs.npz"))
  seen = {}

  def fake_forward(model, x):
    seen["x"] = x.shape
    return dict(expected)

  monkeypatch.setattr(case_lib, "forward", fake_forward)
  out = tmp_path / "sub" / "ours.npz"
  assert cli.main(["--case", str(case_dir), "--out", str(out), "--check"]) == 0
  assert seen["x"][0] == 2
  with np.load(out) as got:
    assert sorted(got.files) == sorted(expected)
  assert "logits: scored error 0.000e+00" in capsys.readouterr().out

  expected["logits"] = expected["logits"] + 1.0
  assert cli.main(["--case", str(case_dir), "--out", str(out), "--check"]) == 1
