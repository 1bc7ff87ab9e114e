"""OPT decoder: HF parameter counts from shapes, and the HF safetensors converter checked against
an independent NumPy OPT forward on a tiny synthetic checkpoint written in HF's key layout."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import save_file

import projects.sea  # noqa: F401
from projects.sea import opt, weights
from projects.sea.config import HF_PARAM_COUNTS, PRESETS, OPTConfig
from third_party import hf_opt

TINY = dict(vocab_size=264, hidden_size=16, num_layers=2, num_heads=2, ffn_dim=24,
            max_position_embeddings=12)


def _count(tree):
  return int(sum(x.size for x in jax.tree.leaves(nnx.state(tree, nnx.Param))))


def test_presets_match_hf_parameter_counts():
  assert opt.param_count(PRESETS["opt-125m"].dense()) == HF_PARAM_COUNTS[
      "opt-125m"] == 125_239_296
  # opt-1.3b from shapes only, one layer abstractly (24 identical layers; a whole-model
  # eval_shape costs ~15 s on a shared CPU): embeddings + 24 layers + final LN.
  cfg = PRESETS["opt-1.3b"]
  layer = _count(nnx.eval_shape(lambda: opt.OPTLayer(cfg, False, rngs=nnx.Rngs(0))))
  d, f = 2048, 8192
  assert layer == 4 * (d * d + d) + 2 * 2 * d + (d * f + f) + (f * d + d)
  total = (cfg.vocab_size + cfg.max_position_embeddings + opt.POSITION_OFFSET) * d \
      + cfg.num_layers * layer + 2 * d
  assert total == 1_315_758_080  # HF facebook/opt-1.3b


def _hf_tensors(rng, c):
  d, f = c["hidden_size"], c["ffn_dim"]
  n = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
  t = {"model.decoder.embed_tokens.weight": n(c["vocab_size"], d),
       "model.decoder.embed_positions.weight": n(c["max_position_embeddings"] + 2, d),
       "model.decoder.final_layer_norm.weight": 1 + n(d), "model.decoder.final_layer_norm.bias": n(d)}
  for i in range(c["num_layers"]):
    p = f"model.decoder.layers.{i}"
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
      t[f"{p}.self_attn.{name}.weight"], t[f"{p}.self_attn.{name}.bias"] = n(d, d), n(d)
    for name in ("self_attn_layer_norm", "final_layer_norm"):
      t[f"{p}.{name}.weight"], t[f"{p}.{name}.bias"] = 1 + n(d), n(d)
    t[f"{p}.fc1.weight"], t[f"{p}.fc1.bias"] = n(f, d), n(f)
    t[f"{p}.fc2.weight"], t[f"{p}.fc2.bias"] = n(d, f), n(d)
  t["lm_head.weight"] = t["model.decoder.embed_tokens.weight"].copy()
  return t


def numpy_opt_forward(t, c, ids):
  """OPT forward from HF tensors, written from modeling_opt.py's equations (float64)."""
  g = lambda k: t[f"model.decoder.{k}"].astype(np.float64)  # noqa: E731
  lin = lambda x, k: x @ g(f"{k}.weight").T + g(f"{k}.bias")  # noqa: E731

  def ln(x, k):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * g(f"{k}.weight") + g(f"{k}.bias")

  T, h, D = len(ids), c["num_heads"], c["hidden_size"] // c["num_heads"]
  x = g("embed_tokens.weight")[ids] + g("embed_positions.weight")[np.arange(T) + 2]
  for i in range(c["num_layers"]):
    p = f"layers.{i}"
    y = ln(x, f"{p}.self_attn_layer_norm")
    q = lin(y, f"{p}.self_attn.q_proj").reshape(T, h, D).transpose(1, 0, 2) * D ** -0.5
    k = lin(y, f"{p}.self_attn.k_proj").reshape(T, h, D).transpose(1, 0, 2)
    v = lin(y, f"{p}.self_attn.v_proj").reshape(T, h, D).transpose(1, 0, 2)
    s = q @ k.transpose(0, 2, 1) + np.triu(np.full((T, T), -1e30), 1)
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    x = x + lin((a @ v).transpose(1, 0, 2).reshape(T, -1), f"{p}.self_attn.out_proj")
    x = x + lin(np.maximum(lin(ln(x, f"{p}.final_layer_norm"), f"{p}.fc1"), 0), f"{p}.fc2")
  return ln(x, "final_layer_norm") @ g("embed_tokens.weight").T


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("hf_opt")
  save_file(_hf_tensors(np.random.default_rng(0), TINY), str(d / "model.safetensors"))
  cfg = dict(num_hidden_layers=TINY["num_layers"], num_attention_heads=TINY["num_heads"],
             do_layer_norm_before=True, activation_function="relu",
             word_embed_proj_dim=TINY["hidden_size"],
             **{k: v for k, v in TINY.items() if k not in ("num_layers", "num_heads")})
  (d / "config.json").write_text(json.dumps(cfg))
  return d


@pytest.fixture(scope="module")
def converted(hf_dir):
  fields, tree = hf_opt.read_checkpoint(str(hf_dir))
  assert fields == TINY
  model = nnx.eval_shape(lambda: opt.OPT(OPTConfig(**fields), rngs=nnx.Rngs(0)))
  model = nnx.merge(*nnx.split(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), model)))
  weights.load_dense(model, tree)
  return model


def test_converted_forward_matches_numpy_opt(hf_dir, converted):
  from safetensors.numpy import load_file
  ids = np.array([3, 17, 0, 263, 5, 5, 21, 8, 1, 30])
  out = converted(jnp.asarray(ids)[None])
  want = numpy_opt_forward(load_file(str(hf_dir / "model.safetensors")), TINY, ids)
  np.testing.assert_allclose(np.asarray(out.logits[0]), want, rtol=2e-4, atol=2e-4)
  assert len(out.hidden_states) == TINY["num_layers"] + 1
  assert out.layers[0].scores is None and out.layers[0].sea is None
  # the round trip: our tree back out equals what was loaded
  back = weights.dense_tree(converted)
  np.testing.assert_array_equal(np.asarray(back["layers"][1]["fc1"]["kernel"]),
                                load_file(str(hf_dir / "model.safetensors"))[
                                    "model.decoder.layers.1.fc1.weight"].T)


def test_converter_errors_name_the_problem(hf_dir, tmp_path):
  tensors = _hf_tensors(np.random.default_rng(1), TINY)
  with pytest.raises(ValueError, match="untied LM head"):
    hf_opt.convert_tensors(dict(tensors, **{"lm_head.weight": tensors["lm_head.weight"] + 1}),
                           TINY)
  del tensors["model.decoder.layers.1.fc2.bias"]
  with pytest.raises(KeyError, match="layers.1.fc2.bias"):
    hf_opt.convert_tensors(tensors, TINY)
  cfg = json.loads((hf_dir / "config.json").read_text())
  with pytest.raises(ValueError, match="post-LN"):
    hf_opt.config_fields(dict(cfg, do_layer_norm_before=False))
  with pytest.raises(FileNotFoundError, match="config.json"):
    hf_opt.read_config(str(tmp_path))
  (tmp_path / "config.json").write_text(json.dumps(cfg))
  with pytest.raises(FileNotFoundError, match="safetensors"):
    hf_opt.read_checkpoint(str(tmp_path))
  with pytest.raises(ValueError, match="sea_layers"):
    OPTConfig(**TINY, sea_layers=(2,))


def test_export_from_hf_writes_a_step0_checkpoint(hf_dir, tmp_path):
  from common.train import config_io, trainer
  from projects.sea import export_opt
  overrides = {f"model.{k}": v for k, v in TINY.items()}
  config = config_io.load_config("projects/sea/configs/stdlib_demo.py:teacher,tiny",
                                 **overrides, **{"data.seq_len": 12})
  export_opt.export_checkpoint(config, str(tmp_path / "init"), hf_dir=str(hf_dir))
  _, state, step = trainer.restore_for_eval(config, str(tmp_path / "init"))
  from safetensors.numpy import load_file
  hf = load_file(str(hf_dir / "model.safetensors"))
  assert step == 0
  np.testing.assert_array_equal(state["params"]["layers"][1]["self_attn"]["v_proj"]["kernel"],
                                hf["model.decoder.layers.1.self_attn.v_proj.weight"].T)
  np.testing.assert_array_equal(state["params"]["embed_positions"]["embedding"],
                                hf["model.decoder.embed_positions.weight"])
  wrong = config_io.load_config("projects/sea/configs/stdlib_demo.py:teacher,tiny")
  with pytest.raises(ValueError, match="config.json has"):
    export_opt.export_checkpoint(wrong, str(tmp_path / "bad"), hf_dir=str(hf_dir))
  small_vocab = config_io.load_config("projects/sea/configs/stdlib_demo.py:teacher,tiny",
                                      **{"model.vocab_size": 200})
  with pytest.raises(ValueError, match="tokenizer has 258 ids"):
    trainer.setup(small_vocab)
