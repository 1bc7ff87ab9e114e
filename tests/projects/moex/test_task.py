"""The MoE-X task: loss and metrics per FFN kind, a few optimiser steps lowering the loss, the
paper's equal-active-parameter configs, up-cycling a dense trainer run, and config errors."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from common.train import config_io, trainer
from projects.moex import task, upcycle

CHESS = "projects/moex/configs/chess.py"


def _config(arg, **overrides):
  # 'stdlib' data: bytes of the Python sources, so these tests need no chess data set.
  return config_io.load_config(f"{CHESS}:{arg},stdlib", **overrides)


def _batch(b=8, t=32, seed=0):
  tokens = np.random.RandomState(seed).randint(2, 258, (b, t + 1)).astype(np.int32)
  weights = np.ones((b, t), np.float32)
  weights[0, -5:] = 0.0
  return {"inputs": jnp.asarray(tokens[:, :-1]), "targets": jnp.asarray(tokens[:, 1:]),
          "weights": jnp.asarray(weights)}


@pytest.mark.parametrize("kind", ["moex", "dense_relu"])
def test_loss_and_metrics(kind):
  cfg = _config(f"tiny,{kind}", **{"model.balance_weight": 0.5})
  t = task.get_task(cfg)
  model = t.build_model(nnx.Rngs(0))
  loss, metrics = jax.device_get(nnx.jit(lambda m, b: t.loss(m, b, train=True, rngs=None))(
      model, _batch()))
  assert abs(metrics["ce"] - np.log(258)) < 0.1   # N(0, 0.02) weights: near-uniform logits
  if kind == "moex":
    assert {"balance_loss", "moe/load_max", "moe/load_min", "hidden_l0"} <= set(metrics)
    np.testing.assert_allclose(loss, metrics["ce"] + 0.5 * metrics["balance_loss"], rtol=1e-6)
    assert metrics["balance_loss"] >= 1.0 - 1e-5   # M * sum f P >= 1, equality when balanced
    assert metrics["moe/load_min"] <= 1 / 8 <= metrics["moe/load_max"]
    assert 0 < metrics["hidden_l0"] <= 2 * cfg.model.expert_hidden   # k experts of ReLU units
  else:
    assert "balance_loss" not in metrics
    np.testing.assert_allclose(loss, metrics["ce"], rtol=1e-6)
    assert 0 < metrics["hidden_l0"] < cfg.model.dense_hidden


def test_optimiser_steps_lower_the_loss():
  t = task.get_task(_config("tiny,moex"))
  model = t.build_model(nnx.Rngs(0))
  opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
  batch = _batch(seed=1)

  @nnx.jit
  def step(model, opt, batch):
    def loss_fn(m):
      return t.loss(m, batch, train=True, rngs=None)[0]
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    opt.update(model, grads)
    return loss

  losses = [float(step(model, opt, batch)) for _ in range(15)]
  assert losses[-1] < losses[0] - 0.5, losses


def test_paper_configs_have_equal_active_parameters():
  for kind in ("moex", "switch", "dense_gelu"):
    c = config_io.load_config(f"{CHESS}:paper,{kind}")
    m = c.model
    assert (m.num_layers, m.num_heads, m.d_model, c.data.seq_len) == (8, 8, 512, 1023)
    assert m.top_k * m.expert_hidden == m.dense_hidden == 4096 and m.num_experts == 8
    assert c.optimizer.learning_rate == 3e-4 and c.train.num_steps == 600_000
    assert c.data.tokenizer == "chess" and m.ffn == kind


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory):
  # Copy mode needs expert width == dense width: 32 both.
  cfg = _config("tiny,dense_gelu", **{"model.expert_hidden": 32})
  workdir = str(tmp_path_factory.mktemp("moex_dense"))
  trainer.train(cfg, workdir)
  return cfg, workdir


def test_upcycled_checkpoint_reproduces_the_dense_run(dense_run, tmp_path):
  cfg, workdir = dense_run
  moe_cfg = _config("tiny,switch", **{"model.expert_hidden": 32, "model.upcycle_mode": "copy"})
  out = str(tmp_path / "upcycled")
  upcycle.upcycle_run(workdir, moe_cfg, out)
  run, state, _ = trainer.restore_for_eval(cfg, workdir)
  moe_run, moe_state, step = trainer.restore_for_eval(moe_cfg, out)
  assert step == 0
  ids = _batch()["inputs"]
  forward = nnx.jit(lambda m, x: m(x))
  np.testing.assert_allclose(np.asarray(forward(moe_run.model(moe_state), ids)),
                             np.asarray(forward(run.model(state), ids)), rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="source must be a dense run"):
    upcycle.upcycle_model(moe_run.model(moe_state), moe_run.model(moe_state))


def test_config_errors():
  with pytest.raises(ValueError, match="top_k=9 must be <= config.model.num_experts=8"):
    task.get_task(_config("tiny", **{"model.top_k": 9}))
  with pytest.raises(ValueError, match="config.model.ffn='geglu'"):
    task.get_task(_config("tiny", **{"model.ffn": "geglu"}))
  with pytest.raises(ValueError, match="exceeds config.model.max_len"):
    task.get_task(_config("tiny", **{"model.max_len": 16})).validate(_config("tiny", **{
        "model.max_len": 16}))
  bad = _config("tiny", **{"eval.evaluators": ("loss", "board_state")})
  with pytest.raises(ValueError, match="'board_state' needs chess transcripts"):
    task.get_task(bad).validate(bad)
  with pytest.raises(ValueError, match="unknown"):
    config_io.load_config(f"{CHESS}:tiny,gelu")
  with pytest.raises(ValueError, match="exclude each other"):
    config_io.load_config(f"{CHESS}:tiny,moex,switch")


def test_language_configs():
  lang = "projects/moex/configs/language.py"
  c = config_io.load_config(f"{lang}:medium,switch,tok=sp")
  assert (c.model.num_layers, c.model.num_heads, c.model.d_model) == (24, 16, 1024)
  assert c.model.top_k * c.model.expert_hidden == c.model.dense_hidden
  assert c.data.name.startswith("tfds:huggingface:huggingfacefw__fineweb/")   # paper Tab. 7
  assert c.train.batch_size == 320 and c.eval.splits == (c.data.eval_split,)
  owt = config_io.load_config(f"{lang}:small,openwebtext,tok=sp")
  assert owt.data.name == "tfds:openwebtext" and owt.eval.splits == ("train[99%:]",)
  assert config_io.load_config(f"{lang}:small,tok=sp,manual=/d/fw").data.manual_dir == "/d/fw"
  assert config_io.load_config(f"{lang}:small,bpe=/data/gpt2").data.tokenizer == "bpe:/data/gpt2"
  with pytest.raises(ValueError, match="tok=gpt2 needs bpe=<folder"):
    config_io.load_config(f"{lang}:small")


def test_misspelled_model_fields_are_errors():
  cfg = _config("tiny")
  with cfg.unlocked():   # as `--config.model.nosuch=3` on an unlocked command line would
    cfg.model.nosuch = 3
  with pytest.raises(ValueError, match=r"unknown field config\.model\.nosuch; allowed fields"):
    task.get_task(cfg)
  cfg = _config("tiny")
  with cfg.unlocked():
    cfg.model.num_expert = 4   # a typo of num_experts
  with pytest.raises(ValueError, match=r"config\.model\.num_expert \(did you mean "
                                       r"config\.model\.num_experts\?\)"):
    task.get_task(cfg).validate(cfg)


def test_remat_policy_keeps_the_forward():
  ids = _batch()["inputs"]
  outs = []
  for policy in ("none", "save_block_outputs"):
    t = task.get_task(_config("tiny,moex", **{"model.remat_policy": policy}))
    outs.append(np.asarray(nnx.jit(lambda m, x: m(x))(t.build_model(nnx.Rngs(0)), ids)))
  np.testing.assert_allclose(outs[1], outs[0], rtol=1e-6, atol=1e-6)
