"""Model, task and configs: state placement, train-mode k-means updates, losses, errors."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.train import config_io, state as state_lib
from projects.routing_transformer import config as config_lib, kmeans, task as task_lib

CONFIGS = "projects/routing_transformer/configs"


@pytest.fixture(scope="module")
def tiny_config():
  return config_io.load_config(f"{CONFIGS}/stdlib_demo.py:tiny")


@pytest.fixture(scope="module")
def task_and_model(tiny_config):
  task = task_lib.get_task(tiny_config)
  return task, task.build_model(nnx.Rngs(0))


def _batch(config, seed=0):
  rs = np.random.RandomState(seed)
  n = config.data.seq_len
  tokens = rs.randint(2, 258, (2, n + 1)).astype(np.int32)
  weights = np.ones((2, n), np.float32)
  weights[1, -5:] = 0.0
  return {"inputs": jnp.asarray(tokens[:, :-1]), "targets": jnp.asarray(tokens[:, 1:]),
          "weights": jnp.asarray(weights)}


def test_kmeans_state_is_model_state_not_params(task_and_model):
  _, model = task_and_model
  _, params, rest = nnx.split(model, nnx.Param, state_lib.non_param_filter())
  rest_leaves = jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(rest))
  names = {str(path[-1]) for path, _ in rest_leaves}
  assert {"['means']", "['ema_means']", "['ema_count']"} <= names, names
  param_paths = str(jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(params)))
  assert "means" not in param_paths and "ema_count" not in param_paths


def test_loss_updates_kmeans_only_in_train_mode(tiny_config, task_and_model):
  task, model = task_and_model
  graphdef, state = nnx.split(model)

  @functools.partial(jax.jit, static_argnums=2)
  def run(state, batch, train):
    m = nnx.merge(graphdef, state)
    loss, metrics = task.loss(m, batch, train=train, rngs=nnx.Rngs(dropout=1))
    return loss, metrics, nnx.state(m, kmeans.KMeansState)

  batch = _batch(tiny_config)
  before = nnx.to_pure_dict(nnx.state(model, kmeans.KMeansState))
  loss, metrics, after_eval = jax.tree.map(np.asarray, run(state, batch, False))
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(nnx.to_pure_dict(after_eval))):
    np.testing.assert_array_equal(a, b)
  loss_t, _, after_train = run(state, batch, True)
  changed = [not np.allclose(a, b) for a, b in
             zip(jax.tree.leaves(before), jax.tree.leaves(nnx.to_pure_dict(after_train)))]
  assert all(changed)
  # Uniform-ish logits at init: ~ln(258) nats, and loss = CE + clustering loss.
  assert abs(float(metrics["cross_entropy"]) - math.log(258)) < 0.5
  np.testing.assert_allclose(float(loss), float(metrics["cross_entropy"] +
                                                metrics["clustering_loss"]), rtol=1e-6)
  np.testing.assert_allclose(float(metrics["bits_per_byte"]),
                             float(metrics["cross_entropy"]) / math.log(2), rtol=1e-6)
  assert float(metrics["clustering_loss"]) > 0 and np.isfinite(float(loss_t))


def test_local_only_model_is_causal(tiny_config):
  """Changing a later token never changes earlier logits (local heads).

  Not asserted for routing heads, on purpose: as in the official code, cluster membership is a
  top-w competition over all positions, so a later token can push an earlier one out of a
  cluster (attention inside a window is causal; test_attention_heads checks that).
  """
  config = config_io.load_config(f"{CONFIGS}/stdlib_demo.py:tiny,local_only")
  model = task_lib.get_task(config).build_model(nnx.Rngs(0))
  tokens = _batch(config)["inputs"]
  t = 40
  edited = tokens.at[:, t].set((tokens[:, t] + 7) % 256 + 2)
  f = nnx.jit(lambda m, x: m(x)[0])
  a, b = np.asarray(f(model, tokens)), np.asarray(f(model, edited))
  np.testing.assert_allclose(a[:, :t], b[:, :t], atol=1e-5)
  assert not np.allclose(a[:, t:], b[:, t:])


@pytest.mark.parametrize("override,match", [
    ({"data.seq_len": 60}, "query_block.*60"),
    ({"model.hidden_size": 30}, "hidden_size=30"),
    ({"model.window": 128}, "window=128"),
    ({"model.memory_flange": 10}, "memory_flange=10"),
    ({"model.attention_impl": "fast"}, "attention_impl='fast'"),
    # The old private vocabulary ('kernel' | 'windowed', kernel_impl) is gone.
    ({"model.attention_impl": "kernel"}, "attention_impl='kernel'"),
    ({"model.attention_impl": "windowed"}, "attention_impl='windowed'"),
    # An explicit kernel impl cannot express attention dropout (relative positions it can).
    ({"model.attention_impl": "xla", "model.attention_dropout": 0.1},
     "attention_impl='xla' cannot express attention dropout"),
    # ... nor a routing self mask with relative positions (the shift would move the distances).
    ({"model.attention_impl": "xla", "model.routing_mask_self": True,
      "model.routing_relative": True, "model.max_relative_position": 4},
     "attention_impl='xla' cannot express routing_mask_self with routing_relative"),
])
def test_bad_config_raises_naming_the_field(tiny_config, override, match):
  config = tiny_config.copy_and_resolve_references()
  for key, value in override.items():
    section, field = key.split(".")
    config[section][field] = value
  with pytest.raises(ValueError, match=match):
    task_lib.get_task(config).build_model(nnx.Rngs(0))


def test_paper_presets_load():
  for name in config_lib.PRESETS:
    c = config_io.load_config(f"{CONFIGS}/paper.py:{name}")  # image presets: test_pixels.py
    assert c.optimizer.name == "adafactor" and c.optimizer.schedule == "rsqrt"
    assert c.model.kmeans_decay == 0.999 and c.model.beta == 1e-4
  c = config_io.load_config(f"{CONFIGS}/paper.py:pg19_8k")
  assert (c.model.num_layers, c.model.skip_first, c.data.seq_len) == (22, 21, 8192)
  for variant in ("demo,routing", "demo,local_only", "demo,dense"):
    c = config_io.load_config(f"{CONFIGS}/stdlib_demo.py:{variant},sinusoidal")
    assert c.data.seq_len >= 2048
    assert (c.model.positions, c.model.local_relative, c.model.routing_relative) == (
        "sinusoidal", False, False)
  dense = config_io.load_config(f"{CONFIGS}/stdlib_demo.py:demo,dense")
  # Full causal attention: the look-back of every block reaches position 0.
  assert dense.model.query_block + dense.model.memory_flange == dense.data.seq_len
  with pytest.raises(ValueError, match="unknown"):
    config_io.load_config(f"{CONFIGS}/stdlib_demo.py:huge")


def test_kernel_and_official_paths_agree_in_the_model(tiny_config):
  """'auto' takes common.kernels.block_sparse_attention, Shaw relative positions included (the
  tiny config has them, as the official text sets); without them the kernel path is the one the
  pixel presets run (test_pixels.py)."""
  config = tiny_config.copy_and_resolve_references()
  logits = {}
  for impl in ("auto", "official"):
    config.model.attention_impl = impl
    model = task_lib.get_task(config).build_model(nnx.Rngs(0))
    logits[impl] = np.asarray(nnx.jit(lambda m, x: m(x)[0])(model, _batch(config)["inputs"]))
  np.testing.assert_allclose(logits["auto"], logits["official"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("field,match", [
    ("nosuch", "unknown field config.model.nosuch"),
    ("num_cluster", "unknown field config.model.num_cluster \\(did you mean "
                    "config.model.num_clusters\\?\\)"),
    ("kernel_impl", "unknown field config.model.kernel_impl"),  # folded into attention_impl
])
def test_misspelled_model_field_is_an_error_naming_it(tiny_config, field, match):
  config = tiny_config.copy_and_resolve_references()
  with config.unlocked():
    config.model[field] = 3
  task = task_lib.get_task(config)
  with pytest.raises(ValueError, match=match):
    task.validate(config)  # what the trainer runs before building anything
  with pytest.raises(ValueError, match=match):
    task.build_model(nnx.Rngs(0))


def test_dtypes_and_remat_reach_the_model(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.model.update(dict(param_dtype="bfloat16", dtype="bfloat16",
                           remat_policy="dots_with_no_batch_dims_saveable"))
  model = nnx.eval_shape(lambda: task_lib.get_task(config).build_model(nnx.Rngs(0)))
  params = jax.tree.leaves(nnx.state(model, nnx.Param))
  assert params and {p.dtype for p in params} == {jnp.dtype(jnp.bfloat16)}
  assert model.remat_policy == "dots_with_no_batch_dims_saveable"
  config.model.remat_policy = "sometimes"
  with pytest.raises(ValueError, match="remat_policy='sometimes'"):
    task_lib.get_task(config).validate(config)
