"""Converter (third_party/sea_attention) and CLI (projects.sea.convert) behaviour, in-process."""
import json
import pathlib

import numpy as np
import pytest
from flax import nnx

from common import convert_cli
from projects.sea import convert
from projects.sea.attention import SEAAttention
from third_party.sea_attention import IGNORED_KEYS, layer_kwargs_from_configs, load_state_dict

TINY = dict(num_heads=1, head_dim=8, predictor_length=8, max_pos=32)
BERT = {"hidden_size": 8, "num_attention_heads": 1, "max_position_embeddings": 32}
PERLIN = {"causal": True, "k": 2, "k_flatten_dim": "causal_batch", "attention_predictor_length": 8,
          "performer_nb_factor": 8, "context_output_method": "mix"}


def _abstract_tiny():
  return nnx.eval_shape(lambda: SEAAttention(1, 8, k=2, predictor_length=8, performer_nb_factor=8,
                                             max_position_embeddings=32, rngs=nnx.Rngs(0)))


@pytest.fixture
def tiny_sd(official_state_dict_factory):
  return official_state_dict_factory(np.random.default_rng(0), num_heads=1, head_dim=8,
                                     predictor_length=8, max_pos=32)


def test_state_dict_key_errors_list_every_key(tiny_sd):
  sd = dict(tiny_sd)
  del sd["attention_predictor_enc.0.bias"], sd["attention_predictor_cnn.2.module.weight"]
  sd["extra.weight"] = np.zeros(3, np.float32)
  with pytest.raises(ValueError) as e:
    load_state_dict(_abstract_tiny(), sd)
  msg = str(e.value)
  for key in ("attention_predictor_enc.0.bias", "attention_predictor_cnn.2.module.weight",
              "extra.weight"):
    assert key in msg
  assert "v_eye_learned'" not in msg and "v_eye_learned" in IGNORED_KEYS


def test_state_dict_value_checks(tiny_sd):
  bad = dict(tiny_sd, **{"attention_predictor_enc.0.weight": np.zeros((16, 23), np.float32)})
  with pytest.raises(ValueError, match="attention_predictor_enc.0.weight.*encoder.linear.kernel"):
    load_state_dict(_abstract_tiny(), bad)
  bad = dict(tiny_sd, **{"performer_proj_updater.instance.projection_matrix":
                         tiny_sd["performer.projection_matrix"] + 1})
  with pytest.raises(ValueError, match="differs from"):
    load_state_dict(_abstract_tiny(), bad)
  mask_key = "attention_predictor_cnn.1.module.net.0.module.weight_mask"
  bad = dict(tiny_sd, **{mask_key: np.ones_like(tiny_sd[mask_key])})
  with pytest.raises(ValueError, match="weight_mask"):
    load_state_dict(_abstract_tiny(), bad)


def test_conv_dead_rows_are_dropped(tiny_sd):
  layer = _abstract_tiny()
  load_state_dict(layer, tiny_sd)
  w = tiny_sd["attention_predictor_cnn.1.module.net.0.module.weight"]
  np.testing.assert_array_equal(np.asarray(layer.decoder.conv1.kernel[...]),
                                np.transpose(w[:, :, :3, :], (2, 3, 1, 0)))


def test_config_translation_and_refusals():
  kw = layer_kwargs_from_configs(BERT, PERLIN)
  assert kw == dict(num_heads=1, head_dim=8, k=2, predictor_length=8, performer_nb_factor=8,
                    max_position_embeddings=32, partial_attention_scaler=True)
  with pytest.raises(ValueError, match="PerlinAttentionConfig.k_flatten_dim='query'"):
    layer_kwargs_from_configs(BERT, dict(PERLIN, k_flatten_dim="query"))
  with pytest.raises(ValueError, match="unknown fields \\['warp'\\]"):
    layer_kwargs_from_configs(BERT, dict(PERLIN, warp=1))
  with pytest.raises(ValueError, match="hidden_size=9"):
    layer_kwargs_from_configs(dict(BERT, hidden_size=9, num_attention_heads=2), PERLIN)


def test_cli_arguments(tmp_path, capsys):
  with pytest.raises(SystemExit):
    convert.main(["--case", str(tmp_path)])  # --out missing
  assert convert.main(["--case", str(tmp_path), "--out", "x.txt"]) == 2
  assert "--out='x.txt' must end with .npz" in capsys.readouterr().err
  assert convert.main(["--case", str(tmp_path / "nope"), "--out", "o.npz"]) == 2
  assert "is not a directory" in capsys.readouterr().err
  parser = convert_cli.build_parser(convert.CONVERTER)
  args = parser.parse_args(["--case", str(tmp_path), "--out", "o.npz"])
  assert args.attention_impl == "official"
  with pytest.raises(SystemExit):  # the old private vocabulary is gone
    parser.parse_args(["--case", str(tmp_path), "--out", "o.npz", "--attention_impl", "dense"])
  assert convert.main(["--case", str(tmp_path), "--out", str(tmp_path / "o.npz")]) == 2
  assert "config.json" in capsys.readouterr().err


def test_cli_hf_to_checkpoint_checks_its_inputs(tmp_path, capsys):
  """--hf DIR --to_checkpoint: a folder whose shapes match no preset needs --config."""
  cfg = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
             ffn_dim=32, max_position_embeddings=16, do_layer_norm_before=True,
             activation_function="relu", word_embed_proj_dim=16)
  (tmp_path / "config.json").write_text(json.dumps(cfg))
  out = str(tmp_path / "ckpt")
  assert convert.main(["--hf", str(tmp_path), "--to_checkpoint", out]) == 2
  assert "none of the presets" in capsys.readouterr().err
  assert convert.main(["--hf", str(tmp_path / "nope"), "--to_checkpoint", out]) == 2
  assert "is not a directory" in capsys.readouterr().err
  assert not pathlib.Path(out).exists()


def test_cli_writes_every_output_key(tmp_path, tiny_sd):
  t = 12
  rng = np.random.default_rng(0)
  q, k, v = rng.standard_normal((3, 1, 1, t, 8)).astype(np.float32)
  mask = np.where(np.tril(np.ones((t, t), bool)), 0, np.finfo(np.float32).min)[None, None]
  np.savez(tmp_path / "state_dict.npz", **tiny_sd)
  np.savez(tmp_path / "inputs.npz", q=q, k=k, v=v, attention_mask=mask.astype(np.float32))
  config = {"config": {"BertConfig": BERT, "PerlinAttentionConfig": PERLIN}}
  (tmp_path / "config.json").write_text(json.dumps(config))
  out = tmp_path / "out" / "o.npz"
  assert convert.main(["--case", str(tmp_path), "--out", str(out)]) == 0
  with np.load(out) as z:
    assert set(z.files) == set(convert.OUTPUT_KEYS)
    assert z["mask_keep"].dtype == np.uint8 and z["context"].shape == (1, t, 8)
    assert np.all(np.isfinite(z["context"]))
  np.savez(tmp_path / "inputs.npz", q=q, k=k, v=v, attention_mask=np.zeros_like(mask))
  with pytest.raises(ValueError, match="attention_mask is not allowed"):
    convert.run_case(str(tmp_path))
