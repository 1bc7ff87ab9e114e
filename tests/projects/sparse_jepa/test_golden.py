"""Golden test: converted official I-JEPA weights reproduce the official outputs (h, z, loss)."""
import json
import pathlib

import numpy as np
import pytest

import common  # noqa: F401
from projects.sparse_jepa import convert as cli
from projects.sparse_jepa.pos_embed import sincos_2d
from third_party.ijepa import convert as ijepa_convert

GOLDEN = pathlib.Path(__file__).resolve().parents[3].parent / "shared" / "golden" / "ijepa"
CASES = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()) if GOLDEN.is_dir() else []
ABSENT = f"golden data absent: {GOLDEN}"


@pytest.fixture(scope="module", params=CASES or [ABSENT])
def case(request):
  if not CASES:
    pytest.skip(ABSENT)
  path = GOLDEN / request.param
  config = json.loads((path / "config.json").read_text())
  with np.load(path / "outputs.npz") as ref:
    ref = dict(ref)
  return path, config, ref, ijepa_convert.run_case(str(path))


def _score(out, ref):
  return float(np.max(np.abs(out.astype(np.float64) - ref)) / max(1.0, np.max(np.abs(ref))))


def test_outputs_match(case):
  _, config, ref, out = case
  scores = {}
  for key in ref:
    assert out[key].shape == ref[key].shape, key
    scores[key] = _score(out[key], ref[key])
  print("scored errors:", scores)
  assert {"h", "z", "loss"} <= set(scores)
  assert all(s <= config["atol"] for s in scores.values()), scores


def test_stored_pos_embed_is_the_sincos_formula(case):
  path, config, _, _ = case
  with np.load(path / "state_dict.npz") as sd:
    enc, pred = sd["encoder/pos_embed"], sd["predictor/predictor_pos_embed"]
  grid = int(round(enc.shape[1]**0.5))
  np.testing.assert_allclose(sincos_2d(enc.shape[2], grid)[None], enc, atol=1e-6)
  np.testing.assert_allclose(sincos_2d(pred.shape[2], grid)[None], pred, atol=1e-6)


def test_strict_keys_listed(case):
  path, config, _, _ = case
  with np.load(path / "state_dict.npz") as sd:
    sd = dict(sd)
  sd["encoder/extra.weight"] = np.zeros(3, np.float32)
  del sd["predictor/mask_token"]
  with pytest.raises(ValueError, match=r"unknown keys \['extra.weight'\]"):
    ijepa_convert.convert(config["config"], sd)
  sd.pop("encoder/extra.weight")
  with pytest.raises(ValueError, match=r"missing keys \['mask_token'\]"):
    ijepa_convert.convert(config["config"], sd)
  with pytest.raises(ValueError, match="prefix"):
    ijepa_convert.split_prefixed({"pos_embed": np.zeros(1)})


def test_cli_writes_reference_keys(case, tmp_path, monkeypatch):
  path, _, ref, out = case
  # Reuse the fixture's outputs: the conversion itself is what test_outputs_match checks.
  monkeypatch.setattr(ijepa_convert, "run_case", lambda case_dir: dict(out))
  target = tmp_path / "sub" / "out.npz"
  cli.main(["--case", str(path), "--out", str(target)])
  with np.load(target) as written:
    assert sorted(written) == sorted(ref)
    np.testing.assert_array_equal(written["h"], out["h"])


def test_cli_argument_errors(tmp_path):
  with pytest.raises(ValueError, match="config.json is missing"):
    cli.main(["--case", str(tmp_path), "--out", str(tmp_path / "o.npz")])
  for name in ("config.json", "state_dict.npz", "inputs.npz"):
    (tmp_path / name).write_text("")
  with pytest.raises(ValueError, match="--out"):
    cli.main(["--case", str(tmp_path), "--out", str(tmp_path / "o.txt")])
  with pytest.raises(SystemExit):
    cli.main(["--out", "x.npz"])
