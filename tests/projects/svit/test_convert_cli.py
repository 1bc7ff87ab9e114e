"""The converter CLI's argument handling, in-process and without running a model."""

import numpy as np
import pytest

import common  # noqa: F401
from common import convert_cli
from projects.svit import convert as cli
from third_party.stvit import case as case_lib
from tests import golden



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
  case_dir = golden.folder("stvit") / golden.cases("stvit")[0]
  expected = convert_cli.load_npz(str(case_dir / "outputs.npz"))
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
