"""Converter: key checks that list offenders, layout round trips, kwargs mapping and the CLI.

Models here are built with nnx.eval_shape (no random init, no compilation), so these tests
cost well under a second each.
"""
import json

import numpy as np
import pytest
from flax import nnx

import common  # noqa: F401
from projects.biformer import BiFormer, BiFormerConfig, config, convert
from third_party.biformer import official_kwargs
from third_party.biformer import state_dict as sd_lib

TINY = dict(depth=(1, 1, 2, 1), embed_dim=(32, 64, 128, 256), qk_dims=(32, 64, 128, 256),
            mlp_ratios=(3, 3, 3, 3), num_classes=10)
from tests import golden


def _abstract(cfg):
  return nnx.eval_shape(lambda: BiFormer(cfg, rngs=nnx.Rngs(0)))


def _fake_state_dict(cfg, seed=0):
  """Random arrays with the official (torch) shapes of every key, via the abstract model."""
  rng = np.random.default_rng(seed)
  flat = dict(nnx.state(_abstract(cfg)).flat_state())
  out = {}
  for key, (path, kind) in sd_lib.key_map(cfg).items():
    shape = flat[path].get_value().shape
    if path[-1] == "kernel":
      shape = (shape[3], shape[2], shape[0], shape[1]) if kind == "conv" else shape[::-1]
    out[key] = rng.standard_normal(shape).astype(np.float32)
  return out


def test_unknown_and_missing_keys_are_listed():
  cfg = BiFormerConfig(**TINY)
  sd = _fake_state_dict(cfg)
  del sd["stages.2.1.attn.wo.bias"]
  del sd["head.weight"]
  sd["stages.2.1.attn.extra.weight"] = np.zeros(3, np.float32)
  sd["bogus"] = np.zeros(1, np.float32)
  with pytest.raises(ValueError) as err:
    sd_lib.load_state_dict(_abstract(cfg), sd)
  msg = str(err.value)
  for key in ("stages.2.1.attn.wo.bias", "head.weight", "stages.2.1.attn.extra.weight",
              "bogus"):
    assert key in msg
  assert "2 unknown" in msg and "2 missing" in msg


def test_shape_mismatch_names_the_key():
  cfg = BiFormerConfig(**TINY)
  sd = _fake_state_dict(cfg)
  sd["stages.0.0.attn.qkv.qkv.weight"] = np.zeros((95, 32), np.float32)
  with pytest.raises(ValueError, match=r"stages\.0\.0\.attn\.qkv\.qkv\.weight"):
    sd_lib.load_state_dict(_abstract(cfg), sd)


def test_num_batches_tracked_is_optional():
  cfg = BiFormerConfig(**TINY)
  sd = _fake_state_dict(cfg)
  sd["norm.num_batches_tracked"] = np.zeros((), np.int64)
  sd_lib.load_state_dict(_abstract(cfg), sd)


@pytest.mark.parametrize("cfg", [
    BiFormerConfig(**TINY),
    BiFormerConfig(**dict(TINY, layer_scale_init_value=1e-6, topks=(1, 4, 16, -1),
                          side_dwconv=0, num_classes=0)),
    config.preset("BiFormer-STL", num_classes=7, depth=(1, 1, 1, 1)),
], ids=["legacy", "legacy_layerscale_mhsa_nolepe_nohead", "stl"])
def test_state_dict_round_trip(cfg):
  sd = _fake_state_dict(cfg, seed=1)
  model = sd_lib.load_state_dict(_abstract(cfg), sd)
  back = sd_lib.to_state_dict(model)
  assert sorted(back) == sorted(sd)
  for k in sd:
    np.testing.assert_array_equal(back[k], sd[k], err_msg=k)


def test_official_kwargs_of_golden_cases():
  for case, auto_pad in (("tiny_s0", False), ("tiny_s1_autopad", True)):
    path = golden.folder(f"biformer/{case}/config.json")
    with open(path) as f:
      meta = json.load(f)
    cfg = official_kwargs.config_from_kwargs(meta["kwargs"], meta["model"])
    assert cfg == BiFormerConfig(**dict(TINY, auto_pad=auto_pad))


def test_official_kwargs_rejects_unsupported():
  base = dict(depth=[1, 1, 1, 1], embed_dim=[32, 64, 128, 256], qk_dims=[32, 64, 128, 256],
              topks=[1, 4, 16, -2], kv_downsample_mode="identity")
  with pytest.raises(ValueError, match="kv_downsample_mode='ada_avgpool'"):
    official_kwargs.config_from_kwargs(dict(base, kv_downsample_mode="ada_avgpool"))
  with pytest.raises(ValueError, match="soft_routing=True"):
    official_kwargs.config_from_kwargs(dict(base, soft_routing=True))
  with pytest.raises(ValueError, match="unknown BiFormer kwargs.*'nope'"):
    official_kwargs.config_from_kwargs(dict(base, nope=1))
  with pytest.raises(ValueError, match="qk_dims"):
    official_kwargs.config_from_kwargs(dict(base, qk_dims=[None] * 4))
  with pytest.raises(ValueError, match="model='Other'"):
    official_kwargs.config_from_kwargs(base, "Other")


def test_cli_requires_its_arguments(capsys):
  with pytest.raises(SystemExit) as err:
    convert.main([])
  assert err.value.code == 2
  assert "--case" in capsys.readouterr().err


def test_cli_rejects_incomplete_case_folder(tmp_path, capsys):
  assert convert.main(["--case", str(tmp_path), "--out", str(tmp_path / "o.npz")]) == 2
  assert "lacks config.json" in capsys.readouterr().err


def test_cli_writes_the_outputs(tmp_path, monkeypatch):
  for name in ("config.json", "state_dict.npz", "inputs.npz"):
    (tmp_path / name).write_bytes(b"")
  seen = {}

  def fake_convert_case(case_dir, *, attention_impl):
    seen.update(case_dir=case_dir, attention_impl=attention_impl)
    return {"logits": np.ones((2, 3), np.float32), "r_idx/0.0": np.zeros((2, 49, 1), np.int64)}

  monkeypatch.setattr(convert, "convert_case", fake_convert_case)
  out = tmp_path / "out.npz"
  assert convert.main(["--case", str(tmp_path), "--out", str(out)]) == 0
  assert seen == {"case_dir": str(tmp_path), "attention_impl": "official"}
  with np.load(out) as data:
    assert sorted(data.files) == ["logits", "r_idx/0.0"]
    assert data["r_idx/0.0"].dtype == np.int64
  assert convert.main(["--case", str(tmp_path), "--out", str(out),
                       "--attention_impl", "xla"]) == 0
  assert seen["attention_impl"] == "xla"
  with pytest.raises(SystemExit):  # the old private vocabulary is gone
    convert.main(["--case", str(tmp_path), "--out", str(out), "--attention_impl", "gather"])
