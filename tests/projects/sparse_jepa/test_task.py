"""The JEPA task on synthetic batches: loss, eval weighting, EMA after_update, masked batches."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.eval import registry
from common.train import config_io
from common.train import state as state_lib
from projects.sparse_jepa import jepa, masked_data, sparsity_head, task as task_lib

CONFIG = "projects/sparse_jepa/configs/mnist_demo.py"


@pytest.fixture(scope="module")
def sparse_task():
  return task_lib.get_task(config_io.load_config(f"{CONFIG}:sparse,tiny"))


@pytest.fixture(scope="module")
def model(sparse_task):
  model = nnx.eval_shape(lambda: sparse_task.build_model(nnx.Rngs(0)))
  rng = np.random.default_rng(0)
  for _, var in nnx.state(model, nnx.Variable).flat_state():
    var.set_value(jnp.asarray(rng.normal(size=var.shape) * 0.2, var.dtype))
  return model


def _batch(t, n=4, step=0):
  images = np.random.default_rng(step).random((n, 28, 28, 1), np.float32)
  masks_enc, masks_pred = t.collator(n, step)
  return {"image": jnp.asarray(images), "masks_enc": jnp.asarray(masks_enc.transpose(1, 0, 2)),
          "masks_pred": jnp.asarray(masks_pred.transpose(1, 0, 2))}


def test_target_encoder_is_state_not_param(sparse_task):
  spec = state_lib.model_spec(sparse_task.build_model, 0)
  params, rest = nnx.to_pure_dict(spec.abstract_params), nnx.to_pure_dict(spec.abstract_rest)
  assert set(params) == {"encoder", "predictor", "head"}
  assert jepa.TARGET in rest
  shapes = lambda t: jax.tree.map(lambda x: x.shape, t)
  online = shapes(params["encoder"])
  target = shapes(rest[jepa.TARGET])
  assert target == {**online, "pos_embed": target["pos_embed"]}


def test_loss_metrics_and_eval_weighting(sparse_task, model):
  batch = _batch(sparse_task)
  loss_fn = nnx.jit(lambda m, b, train: sparse_task.loss(m, b, train=train, rngs=None),
                    static_argnums=2)
  loss, metrics = jax.device_get(loss_fn(model, batch, False))
  assert np.isfinite(loss)
  assert {"ijepa_loss", "sparsity/penalty", "sparsity/active_units",
          "sparsity/total_correlation", "masks/context_keep"} <= set(metrics)
  np.testing.assert_allclose(loss, metrics["ijepa_loss"] + metrics["sparsity/penalty"],
                             rtol=1e-5)
  # The padded-eval path equals the official means when every example is real ...
  ones = dict(batch, mask=jnp.ones(4, jnp.float32))
  w_loss, w_metrics = jax.device_get(loss_fn(model, ones, False))
  np.testing.assert_allclose(w_loss, loss, rtol=1e-5)
  np.testing.assert_allclose(w_metrics["ijepa_loss"], metrics["ijepa_loss"], rtol=1e-5)
  # ... and ignores padding: whatever a row with mask 0 holds, the result is the same.
  mask = jnp.asarray([1.0, 1.0, 1.0, 0.0])
  garbage = [dict(ones, image=ones["image"].at[3].set(v), mask=mask) for v in (7.0, -3.0)]
  (l1, m1), (l2, m2) = (jax.device_get(loss_fn(model, g, False)) for g in garbage)
  np.testing.assert_allclose(l1, l2, rtol=1e-6)
  np.testing.assert_allclose(m1["sparsity/recon"], m2["sparsity/recon"], rtol=1e-6)
  assert abs(float(l1) - float(w_loss)) > 1e-6  # dropping an example does change the mean


def test_after_update_is_the_scheduled_ema(sparse_task):
  spec = state_lib.model_spec(sparse_task.build_model, 0)
  rng = np.random.default_rng(1)
  rand = lambda tree: jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype), tree)
  params = rand(nnx.to_pure_dict(spec.abstract_params))
  rest = rand(nnx.to_pure_dict(spec.abstract_rest))
  num_steps = sparse_task.config.train.num_steps
  for step in (0, 1, num_steps - 1):
    m = 0.996 + step * (1.0 - 0.996) / num_steps  # official linear schedule, ipe_scale 1
    new = jax.jit(sparse_task.after_update)(params, rest, jnp.int32(step))
    want = jax.tree.map(lambda t, o: m * t + (1 - m) * o,
                        {k: v for k, v in rest[jepa.TARGET].items() if k != "pos_embed"},
                        params["encoder"])
    got = {k: v for k, v in new[jepa.TARGET].items() if k != "pos_embed"}
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, want)
    np.testing.assert_array_equal(new[jepa.TARGET]["pos_embed"], rest[jepa.TARGET]["pos_embed"])
    # The online side's frozen tables are untouched.
    np.testing.assert_array_equal(new["encoder"]["pos_embed"], rest["encoder"]["pos_embed"])


def test_project_params_is_the_group_lasso_prox_step(sparse_task):
  """lasso_mode 'proximal' (the default): after the optimiser step the head's decoder blocks
  are soft-thresholded at lr * lasso_weight (exact zeros below it); nothing else moves."""
  spec = state_lib.model_spec(sparse_task.build_model, 0)
  rng = np.random.default_rng(2)
  params = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype),
                        nnx.to_pure_dict(spec.abstract_params))
  cfg = sparse_task.model_config.sparsity
  assert cfg.lasso_mode == "proximal"
  w = np.array(params["head"]["decoder"])
  k = cfg.latent_group_size
  w[0, :k] *= 1e-3                        # one small block: below any threshold used here
  params["head"]["decoder"] = jnp.asarray(w)
  lr = 50.0                               # threshold 50 * lasso_weight
  new = jax.jit(sparse_task.project_params)(params, jnp.int32(3), jnp.float32(lr))
  got = np.asarray(new["head"]["decoder"])
  want = np.asarray(sparsity_head.prox_group_lasso(jnp.asarray(w), k, lr * cfg.lasso_weight))
  np.testing.assert_allclose(got, want, rtol=1e-6)
  assert np.all(got[0, :k] == 0) and np.abs(got).sum() > 0
  same = lambda a, b: jax.tree.map(np.testing.assert_array_equal, a, b)
  same(new["encoder"], params["encoder"])
  same({n: v for n, v in new["head"].items() if n != "decoder"},
       {n: v for n, v in params["head"].items() if n != "decoder"})
  # I-JEPA (no head) and the subgradient mode leave the parameters alone.
  sub = task_lib.get_task(config_io.load_config(
      f"{CONFIG}:sparse,tiny", **{"model.sparsity.lasso_mode": "subgradient"}))
  assert sub.project_params(params, 3, lr) is params


def test_masked_batches_resume_exactly(sparse_task):
  class Counter:  # stands in for the grain iterator: state = position
    def __init__(self):
      self.i = 0

    def __next__(self):
      self.i += 1
      return {"image": np.zeros((4, 28, 28, 1), np.float32)}

    def get_state(self):
      return {"i": self.i}

    def set_state(self, s):
      self.i = s["i"]

  # Two processes of a global batch of 8 get disjoint halves of the same global masks.
  halves = [masked_data.MaskedBatches(Counter(), sparse_task.collator, process_index=p,
                                      process_count=2) for p in (0, 1)]
  first = [next(h) for h in halves]
  full_enc, _ = sparse_task.collator(8, 0)
  np.testing.assert_array_equal(np.concatenate([b["masks_enc"] for b in first], axis=0),
                                full_enc.transpose(1, 0, 2))
  it = masked_data.MaskedBatches(Counter(), sparse_task.collator)
  next(it)
  state = it.get_state()
  want = [next(it)["masks_pred"] for _ in range(2)]
  resumed = masked_data.MaskedBatches(Counter(), sparse_task.collator)
  resumed.set_state(state)
  for w in want:
    np.testing.assert_array_equal(next(resumed)["masks_pred"], w)
  with pytest.raises(ValueError, match="mask_step"):
    resumed.set_state({"i": 0})


def test_bucket_length_and_bad_config():
  assert [masked_data.bucket_length(k, 1.5) for k in (5, 6, 10, 11, 16)] == [5, 5, 7, 11, 11]
  assert masked_data.bucket_length(13, 0.0) == 13
  with pytest.raises(ValueError, match="keep_bucket=0.5"):
    masked_data.bucket_length(4, 0.5)
  config = config_io.load_config(f"{CONFIG}:tiny")
  config.model.ema = (0.9, 0.5)
  with pytest.raises(ValueError, match=r"config.model: ema=\(0.9, 0.5\)"):
    task_lib.get_task(config)
  config = config_io.load_config(f"{CONFIG}:tiny")
  config.eval.evaluators = ("linear_probe", "latent_sparsity")
  with pytest.raises(ValueError, match="latent_sparsity"):
    registry.build(config, task_lib.get_task(config))
  with pytest.raises(ValueError, match="config variant 'huge'"):
    config_io.load_config(f"{CONFIG}:huge")
