"""The Monet task: loss and metrics on synthetic batches, a 3-step trainer run on the 'tiny'
config (router running statistics move), sampling from its checkpoint, and config errors."""
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from common.train import config_io, trainer
from projects.monet import config as config_lib
from projects.monet import sample, task
from projects.monet.model import MonetForCausalLM

CONFIGS = "projects/monet/configs"


@pytest.fixture(scope="module")
def tiny():
  return config_io.load_config(f"{CONFIGS}/stdlib_demo.py:tiny")


def _batch(b=3, t=32, pad=0, seed=0, pad_seed=1):
  rs = np.random.RandomState(seed)
  tokens = rs.randint(2, 258, (b, t + 1)).astype(np.int32)
  # Padding rows hold different garbage per pad_seed: with mask 0 they must not count.
  garbage = np.random.RandomState(pad_seed).randint(2, 258, (pad, t + 1)).astype(np.int32)
  tokens = np.concatenate([tokens, garbage])
  weights = np.ones((b + pad, t), np.float32)
  weights[0, -5:] = 0.0  # the data layer's padding at the end of the stream
  mask = np.r_[np.ones(b), np.zeros(pad)].astype(np.float32)
  return {"inputs": jnp.asarray(tokens[:, :-1]), "targets": jnp.asarray(tokens[:, 1:]),
          "weights": jnp.asarray(weights), "mask": jnp.asarray(mask)}


def test_loss_metrics_padding_and_aux_weights(tiny):
  t = task.get_task(tiny)
  model = t.build_model(nnx.Rngs(0))
  loss_fn = nnx.jit(lambda m, b: t.loss(m, b, train=True, rngs=None))
  loss, metrics = jax.device_get(loss_fn(model, _batch()))
  assert set(metrics) == {"ce", "ppl", "accuracy", "uniformity", "ambiguity",
                          "routing/usage_entropy", "routing/token_entropy", "routing/selected",
                          "routing/utilisation"}
  assert abs(metrics["ce"] - np.log(258)) < 0.1  # N(0, 0.02) weights: near-uniform logits
  np.testing.assert_allclose(metrics["ppl"], np.exp(metrics["ce"]), rtol=1e-5)
  m = tiny.model
  np.testing.assert_allclose(loss, metrics["ce"] + m.unif_weight * metrics["uniformity"]
                             + m.amb_weight * metrics["ambiguity"], rtol=1e-6)
  # Train-mode BN picks about k experts per (token, head) whatever the logits' scale.
  assert 1.0 <= metrics["routing/selected"] <= 2 * tiny.model.moe_topk
  assert 0.0 < metrics["routing/utilisation"] <= 1.0
  assert metrics["routing/usage_entropy"] <= np.log(tiny.model.moe_experts) + 1e-5

  # Padding examples (mask 0) must not count; train=False so that batch statistics do not mix.
  eval_fn = nnx.jit(lambda m, b: t.loss(m, b, train=False, rngs=None))
  plain = jax.device_get(eval_fn(model, _batch(pad=2, pad_seed=1)))
  padded = jax.device_get(eval_fn(model, _batch(pad=2, pad_seed=2)))
  np.testing.assert_allclose(padded[0], plain[0], rtol=1e-5)
  for k in ("ce", "uniformity", "ambiguity", "routing/selected"):
    np.testing.assert_allclose(padded[1][k], plain[1][k], rtol=1e-5, atol=1e-6)

  no_aux = task.get_task(config_io.load_config(
      f"{CONFIGS}/stdlib_demo.py:tiny", **{"model.unif_weight": 0.0, "model.amb_weight": 0.0}))
  assert (no_aux.routing_loss.unif_weight, no_aux.routing_loss.amb_weight) == (0.0, 0.0)


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("monet_tiny"))
  final = trainer.train(tiny, workdir)
  return final, workdir


def test_trainer_run_updates_router_running_statistics(tiny, trained):
  final, workdir = trained
  assert np.isfinite(final["train/loss"]) and np.isfinite(final["eval/loss/validation/ce"])
  assert final["eval/loss/validation/ppl"] == pytest.approx(
      np.exp(final["eval/loss/validation/ce"]), rel=1e-5)
  run, state, step = trainer.restore_for_eval(tiny, workdir)
  assert step == tiny.train.num_steps
  norm1 = state["model_state"]["layers"][0]["router"]["norm1"]
  # Initial running stats are mean 0 / var 1; 3 train-mode steps with momentum 0.1 move them.
  assert np.abs(np.asarray(norm1["mean"])).max() > 1e-6
  assert np.abs(np.asarray(norm1["var"]) - 1.0).max() > 1e-3
  assert "norm1" not in str(jax.tree_util.tree_structure(state["params"]))


def test_sample_restores_and_continues_the_prompt(trained):
  _, workdir = trained
  text = sample.sample(workdir, "def f(", max_new_tokens=5)
  assert text.startswith("def f(")
  with pytest.raises(ValueError, match="--prompt"):
    sample.sample(workdir, "")


def test_paper_configs_and_errors():
  c = config_io.load_config(f"{CONFIGS}/paper.py:vd-1.4B")
  assert config_lib.from_config(c.model) == config_lib.get_preset("vd-1.4B", dtype=jnp.bfloat16)
  assert c.data.name.startswith("tfds:") and c.train.batch_size * c.data.seq_len == 2 ** 21
  assert dict(c.mesh.rules)["expert"] == "expert"
  hd = config_io.load_config(f"{CONFIGS}/paper.py:hd-850M-groups1")
  assert config_lib.from_config(hd.model).moe_groups == 1
  with pytest.raises(ValueError, match="preset"):
    config_io.load_config(f"{CONFIGS}/paper.py:vd-2B")
  bad = config_io.load_config(f"{CONFIGS}/stdlib_demo.py:tiny", **{"model.moe_decompose": "diag"})
  with pytest.raises(ValueError, match="moe_decompose='diag'"):
    task.get_task(bad)
  bad = config_io.load_config(f"{CONFIGS}/stdlib_demo.py:tiny", **{"model.aux_reduce": "max"})
  with pytest.raises(ValueError, match="config.model.aux_reduce='max'"):
    task.get_task(bad)
  with pytest.raises(ValueError, match="unknown"):
    config_io.load_config(f"{CONFIGS}/stdlib_demo.py:tiny,big")


@pytest.mark.parametrize("field, value, named", [
    ("nosuch", 3, "config.model.nosuch"),
    ("moe_topks", 4, "config.model.moe_topks (did you mean config.model.moe_topk?)"),
])
def test_misspelled_model_field_is_named(tiny, field, value, named):
  c = ml_collections.ConfigDict(tiny.to_dict())
  c.model[field] = value
  with pytest.raises(ValueError, match=re.escape(named)):
    task.get_task(c).validate(c)
  with pytest.raises(ValueError, match=re.escape(named)):
    config_lib.from_config(c.model)


@pytest.mark.parametrize("field, value", [("dtype", "float64"), ("param_dtype", "int8"),
                                          ("remat_policy", "sometimes")])
def test_bad_dtype_and_remat_values_are_named(tiny, field, value):
  bad = config_io.load_config(f"{CONFIGS}/stdlib_demo.py:tiny", **{f"model.{field}": value})
  with pytest.raises(ValueError, match=f"{field}"):
    config_lib.from_config(bad.model)


def test_remat_policies_give_the_same_loss_and_gradients(tiny):
  """remat changes what the backward pass stores, never a number."""
  cfg = config_lib.from_config(tiny.model)
  from projects.monet.model import MonetForCausalLM  # pylint: disable=g-import-not-at-top
  batch = _batch(b=2, t=16)
  results = []
  for policy in ("none", "full", "save_block_outputs"):
    model = MonetForCausalLM(cfg.replace(remat_policy=policy), rngs=nnx.Rngs(0))

    def loss(m):
      out = m(batch["inputs"], labels=batch["inputs"], train=True)
      return out.loss

    value, grads = nnx.value_and_grad(loss)(model)
    results.append((float(value), jax.tree.leaves(nnx.state(grads, nnx.Param))))
  for value, grads in results[1:]:
    assert value == pytest.approx(results[0][0], rel=1e-6)
    for g, g0 in zip(grads, results[0][1]):
      np.testing.assert_allclose(g, g0, rtol=1e-4, atol=1e-7)


def test_dense_baseline_has_equal_parameters_and_no_routing():
  count = lambda cfg: sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(
      nnx.eval_shape(lambda: MonetForCausalLM(cfg, rngs=nnx.Rngs(0))), nnx.Param)))
  for overrides in ({}, {"moe_experts": 32, "moe_groups": 1}, {"hidden_size": 96}):
    cfg = config_lib.MonetConfig(**dict(dict(vocab_size=258, hidden_size=64, num_hidden_layers=2,
                                              num_attention_heads=4, moe_dim=8, moe_heads=4,
                                              moe_experts=16, moe_topk=4, moe_groups=2),
                                         **overrides))
    dense = cfg.replace(moe_decompose="dense")
    assert not dense.router_layers and cfg.router_layers
    # Within one unit of width per layer: |difference| <= 2 d + 1 per layer.
    assert abs(count(dense) - count(cfg)) <= cfg.num_hidden_layers * (2 * cfg.hidden_size + 1)
  config = config_io.load_config("projects/monet/configs/domains_demo.py:tiny,dense")
  t = task.get_task(config)
  model = t.build_model(nnx.Rngs(0))
  loss, metrics = jax.device_get(nnx.jit(lambda m, b: t.loss(m, b, train=True, rngs=None))(
      model, _batch()))
  assert set(metrics) == {"ce", "ppl", "accuracy"} and loss == metrics["ce"]
  assert abs(metrics["ce"] - np.log(258)) < 0.1
