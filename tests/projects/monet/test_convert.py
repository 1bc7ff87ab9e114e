"""Converter strictness (unknown / missing / misshaped keys are listed) and the CLI's arguments."""
import dataclasses
import json

import numpy as np
import pytest

from projects.monet import convert
from tests.projects.monet import tiny
from third_party.monet import (build_model, convert_state_dict, expected_torch_shapes,
                               load_hf_checkpoint, read_safetensors)


def _synthetic_state_dict(cfg, seed=0):
  rng = np.random.default_rng(seed)
  sd = {k: rng.standard_normal(shape).astype(np.float32) for k, shape in expected_torch_shapes(cfg).items()}
  for l in cfg.router_layers:  # a real state_dict also holds these int64 buffers
    for s in ("1", "2"):
      sd[f"model.layers.{l}.router.norm{s}.num_batches_tracked"] = np.zeros((), np.int64)
  return sd


@pytest.mark.parametrize("decompose", ["vertical", "horizontal"])
def test_unknown_missing_and_misshaped_keys_are_listed(decompose):
  cfg = tiny.config(moe_decompose=decompose)
  sd = _synthetic_state_dict(cfg)
  convert_state_dict(sd, cfg)  # complete: no error
  del sd["model.layers.1.self_attn.k_proj.weight"]
  del sd["model.layers.2.router.w2.weight"]
  sd["model.layers.0.mlp.gate_proj.weight"] = np.zeros((4, 4), np.float32)
  sd["model.norm.weight"] = np.zeros((3,), np.float32)
  with pytest.raises(ValueError) as err:
    convert_state_dict(sd, cfg)
  msg = str(err.value)
  for key in ("model.layers.1.self_attn.k_proj.weight", "model.layers.2.router.w2.weight",
              "model.layers.0.mlp.gate_proj.weight", "model.norm.weight"):
    assert key in msg
  assert "unknown keys (1)" in msg and "missing keys (2)" in msg and "shape mismatches (1)" in msg


def test_wrong_decomposition_is_reported():
  sd = _synthetic_state_dict(tiny.config(moe_decompose="horizontal"))
  with pytest.raises(ValueError, match=r"moe\.u\.weight.*moe_decompose='vertical'|moe_decompose='vertical'.*moe\.u\.weight"):
    convert_state_dict(sd, tiny.config(moe_decompose="vertical"))


def test_layouts_unflatten_like_torch():
  """router h*E + e, expert i*m + r: the flat torch output index splits as (H, E) / (E, m)."""
  cfg = tiny.config(moe_decompose="horizontal")
  sd = _synthetic_state_dict(cfg)
  params = convert_state_dict(sd, cfg)
  w = sd["model.layers.0.router.w1.weight"]  # (H*E, d)
  np.testing.assert_array_equal(params[("layers", 0, "router", "w1")][:, 1, 3], w[1 * cfg.moe_experts + 3])
  u = sd["model.layers.0.moe.u.weight"]  # (E*m, d)
  np.testing.assert_array_equal(params[("layers", 0, "moe", "u")][:, 5, 2], u[5 * cfg.moe_dim + 2])
  v = sd["model.layers.0.moe.v.weight"]  # (d, E*m)
  np.testing.assert_array_equal(params[("layers", 0, "moe", "v")][5, 2], v[:, 5 * cfg.moe_dim + 2])


def _write_safetensors(path, tensors, dtype_name="F32"):
  """A minimal writer (format: u64 header length, JSON header, raw little-endian bytes)."""
  header, blobs, offset = {}, [], 0
  for name, arr in tensors.items():
    raw = np.ascontiguousarray(arr).tobytes()
    header[name] = {"dtype": dtype_name if arr.dtype != np.int64 else "I64", "shape": list(arr.shape),
                    "data_offsets": [offset, offset + len(raw)]}
    blobs.append(raw)
    offset += len(raw)
  head = json.dumps(header).encode()
  with open(path, "wb") as f:
    f.write(len(head).to_bytes(8, "little") + head + b"".join(blobs))


def test_hf_checkpoint_folder_sharded_bf16(tmp_path):
  import ml_dtypes  # pylint: disable=g-import-not-at-top
  cfg = tiny.config(num_key_value_heads=4)
  sd = _synthetic_state_dict(cfg)
  bf16 = {k: (v.astype(ml_dtypes.bfloat16) if v.dtype == np.float32 else v) for k, v in sd.items()}
  keys = sorted(bf16)
  shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
  for name, names in shards.items():
    _write_safetensors(tmp_path / name, {k: bf16[k] for k in names}, "BF16")
  (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
      {"weight_map": {k: name for name, names in shards.items() for k in names}}))
  hf_config = {"architectures": ["MonetForCausalLM"], "model_type": "monet", "torch_dtype": "bfloat16",
               "vocab_size": 256, "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
               "num_key_value_heads": 4, "moe_dim": 8, "moe_heads": 2, "moe_experts": 16, "moe_topk": 4,
               "moe_groups": 2, "moe_decompose": "vertical", "hidden_act": "relu2", "rms_norm_eps": 1e-6,
               "rope_theta": 10000.0, "rope_scaling": None, "max_position_embeddings": 2048,
               "tie_word_embeddings": False, "attention_bias": False, "head_dim": 16}
  (tmp_path / "config.json").write_text(json.dumps(hf_config))
  got = read_safetensors(str(tmp_path / "model-00001-of-00002.safetensors"))
  assert got[keys[0]].dtype == ml_dtypes.bfloat16
  loaded_cfg, model = load_hf_checkpoint(str(tmp_path))
  assert loaded_cfg == cfg
  ref = build_model(cfg, {k: np.asarray(v, np.float32) for k, v in bf16.items()})
  np.testing.assert_array_equal(model.layers[2].moe.v21[...], ref.layers[2].moe.v21[...])
  np.testing.assert_array_equal(model.layers[0].router.norm2.var[...],
                                ref.layers[0].router.norm2.var[...])


def test_unknown_config_key_is_listed():
  from projects.monet import MonetConfig  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="moe_new_option"):
    MonetConfig.from_hf({"hidden_size": 64, "moe_new_option": 3})
  with pytest.raises(ValueError, match="rope_scaling"):
    MonetConfig.from_hf({"hidden_size": 64, "rope_scaling": {"type": "linear", "factor": 2.0}})


def test_cli_arguments(tmp_path, monkeypatch, capsys):
  with pytest.raises(SystemExit):
    convert.main([])  # --case or --hf is required
  assert convert.main(["--case", str(tmp_path), "--out", str(tmp_path / "x.txt")]) == 2
  assert "--out" in capsys.readouterr().err
  assert convert.main(["--case", str(tmp_path), "--out", str(tmp_path / "x.npz")]) == 2
  assert "config.json" in capsys.readouterr().err
  for name in ("config.json", "state_dict.npz", "inputs.npz"):
    (tmp_path / name).write_text("")
  fake = {"logits": np.ones((1, 2, 3), np.float32), "loss": np.float32(1.5)}
  monkeypatch.setattr(convert, "convert_case", lambda case: fake)
  out = tmp_path / "sub" / "o.npz"
  assert convert.main(["--case", str(tmp_path), "--out", str(out)]) == 0
  with np.load(out) as written:
    assert sorted(written.files) == ["logits", "loss"]


def test_presets_are_recognised_from_hf_configs():
  from projects.monet.config import PRESETS  # pylint: disable=g-import-not-at-top
  assert convert.preset_of(PRESETS["hd-4.1B-groups1"]) == "hd-4.1B-groups1"
  assert convert.preset_of(PRESETS["vd-1.4B"].replace(moe_topk=4)) is None


def test_hf_folder_to_trainer_checkpoint(tmp_path):
  """--hf DIR --to_checkpoint WORKDIR --config: the trainer restores the converted weights."""
  from common.train import config_io, trainer  # pylint: disable=g-import-not-at-top
  from projects.monet import config as config_lib  # pylint: disable=g-import-not-at-top
  spec = "projects/monet/configs/stdlib_demo.py:tiny"
  train_config = config_io.load_config(spec)
  cfg = config_lib.from_config(train_config.model)
  sd = _synthetic_state_dict(cfg)
  hf = tmp_path / "hf"
  hf.mkdir()
  _write_safetensors(hf / "model.safetensors", sd)
  hf_config = {k: v for k, v in dataclasses.asdict(cfg).items()
               if k not in ("dtype", "param_dtype", "remat_policy")}
  (hf / "config.json").write_text(json.dumps({"model_type": "monet", **hf_config}))
  workdir = tmp_path / "run"
  assert convert.main(["--hf", str(hf), "--to_checkpoint", str(workdir), "--config", spec]) == 0
  _, state, step = trainer.restore_for_eval(train_config, str(workdir))
  assert step == 0
  np.testing.assert_array_equal(state["params"]["lm_head"],
                                sd["lm_head.weight"].T)
  np.testing.assert_array_equal(state["model_state"]["layers"][0]["router"]["norm1"]["var"],
                                sd["model.layers.0.router.norm1.running_var"])
  # A config of another architecture is refused, naming the differing field.
  other = "projects/monet/configs/chess.py:tiny"
  with pytest.raises(ValueError, match="vocab_size"):
    convert.main(["--hf", str(hf), "--to_checkpoint", str(tmp_path / "x"), "--config", other,
                  "--traceback"])
