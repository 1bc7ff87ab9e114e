"""Golden test: converted official I-JEPA weights reproduce the official outputs (h, z, loss)."""
import json

import numpy as np
import pytest

import common  # noqa: F401
from projects.sparse_jepa import convert as cli
from projects.sparse_jepa.pos_embed import sincos_2d
from tests import golden
from third_party.ijepa import convert as ijepa_convert

CASES = golden.cases("ijepa")


# Without the folder there are no cases: one placeholder lets golden.folder skip (or fail under CI).
@pytest.fixture(scope="module", params=CASES or ["absent"])
def case(request):
  path = golden.folder("ijepa") / request.param
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


def test_cli_argument_errors(tmp_path, capsys):
  assert cli.main(["--case", str(tmp_path), "--out", str(tmp_path / "o.npz")]) == 2
  assert "lacks config.json" in capsys.readouterr().err
  for name in ("config.json", "state_dict.npz", "inputs.npz"):
    (tmp_path / name).write_text("")
  assert cli.main(["--case", str(tmp_path), "--out", str(tmp_path / "o.txt")]) == 2
  assert "--out" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    cli.main(["--out", "x.npz"])


def test_case_weights_to_trainer_checkpoint(case, tmp_path):
  """--case DIR --to_checkpoint WORKDIR --config: the trainer restores the official weights."""
  from common.train import config_io, trainer  # pylint: disable=g-import-not-at-top
  path, config, _, _ = case
  enc, pred = config["config"]["encoder"], config["config"]["predictor"]
  spec = "projects/sparse_jepa/configs/mnist_demo.py:tiny"
  overrides = {"model.embed_dim": int(enc["embed_dim"]), "model.depth": int(enc["depth"]),
               "model.num_heads": int(enc["num_heads"]),
               "model.mlp_ratio": float(enc.get("mlp_ratio", 4.0)),
               "model.patch_size": int(enc["patch_size"]),
               "model.pred_depth": int(pred["depth"]),
               "model.pred_emb_dim": int(pred["predictor_embed_dim"]),
               # The model's input shape comes from config.data: the case's, not MNIST's.
               "data.image_size": int(np.ravel(enc["img_size"])[0]),
               "data.channels": int(enc.get("in_chans", 3))}
  train_config = config_io.load_config(spec, **overrides)
  with np.load(path / "state_dict.npz") as sd:
    weights = dict(sd)
  cfg_file = tmp_path / "case_config.py"
  cfg_file.write_text(
      "from common.train import config_io\n"
      f"def get_config(arg=None):\n  return config_io.load_config({spec!r}, **{overrides!r})\n")
  workdir = tmp_path / "run"
  assert cli.main(["--case", str(path), "--to_checkpoint", str(workdir), "--config",
                   str(cfg_file), "--traceback"]) == 0
  _, state, step = trainer.restore_for_eval(train_config, str(workdir))
  assert step == 0
  np.testing.assert_array_equal(state["params"]["predictor"]["mask_token"],
                                weights["predictor/mask_token"])
  np.testing.assert_array_equal(state["model_state"]["target_encoder"]["norm"]["scale"],
                                weights["encoder/norm.weight"])
