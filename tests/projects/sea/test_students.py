"""The demo's students (config.model.student_attention: sea | performer | local) on the tiny recall
config: each distils without error with finite metrics, the attention rows the metrics read are
the ones each layer applies, 'local' reads only its window, and dynamic k re-evaluates a trained
SEA student at other k."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import projects.sea  # noqa: F401
from common.train import config_io, trainer
from projects.sea import dynamic_k, export_opt, opt, task as task_lib
from projects.sea.config import OPTConfig, local_block

CONFIG = "projects/sea/configs/recall.py"
KINDS = ("sea", "performer", "local")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """One tiny teacher, exported into one 2-step distillation run per student kind."""
  root = tmp_path_factory.mktemp("sea_students")
  teacher_cfg = config_io.load_config(f"{CONFIG}:teacher,tiny")
  trainer.train(teacher_cfg, str(root / "teacher"))
  out = {}
  for kind in KINDS:
    cfg = config_io.load_config(f"{CONFIG}:student,tiny,student_attention={kind}")
    export_opt.export_checkpoint(cfg, str(root / f"init_{kind}"),
                                 dense_workdir=str(root / "teacher"))
    cfg.train.init_from = str(root / f"init_{kind}")
    final = trainer.train(cfg, str(root / kind))
    out[kind] = (cfg, str(root / kind), final)
  return out


@pytest.mark.parametrize("kind", KINDS)
def test_each_student_distils_with_finite_metrics(runs, kind):
  cfg, _, final = runs[kind]
  keys = ["ce", "kd/hidden_mse", "kd/logit_kl", "sea/context_mse", "sea/layer_loss"]
  if kind == "sea":
    keys += ["sea/estimate_kl", "sea/dense_score_loss", "sea/kept_key_fraction"]
  else:  # no estimator, no dense-score term: the loss keeps the terms that exist
    assert "train/sea/estimate_kl" not in final and "train/sea/dense_score_loss" not in final
  for key in keys:
    for prefix in ("train/", "eval/loss/validation/"):
      assert np.isfinite(final[prefix + key]), prefix + key
  for key in ("attention_kl", "teacher_attention_covered"):  # measured in evaluation only
    assert np.isfinite(final["eval/loss/validation/" + key]) and "train/" + key not in final
  for b in ("near", "far"):
    assert np.isfinite(final[f"eval/recall/validation/recall_{b}_ce"])
  m = {k[len("train/"):]: v for k, v in final.items() if k.startswith("train/")}
  if kind != "sea":  # the official weights, the context MSE as the only layer term
    np.testing.assert_allclose(m["sea/layer_loss"], m["sea/context_mse"], rtol=1e-5)
    np.testing.assert_allclose(
        m["loss"], 0.1 * m["ce"] + 5 * m["kd/hidden_mse"] + 0.2 * m["kd/logit_kl"]
        + m["sea/layer_loss"], rtol=1e-4)
  covered = final["eval/loss/validation/teacher_attention_covered"]
  if kind == "performer":
    assert covered == 1.0
  else:
    assert 0 < covered < 1
  assert final["eval/loss/validation/attention_kl"] >= 0


def _tiny_opt(kind, *, num_layers=1, seq_len=64):
  cfg = OPTConfig(vocab_size=64, hidden_size=32, num_layers=num_layers, num_heads=2, ffn_dim=64,
                  max_position_embeddings=seq_len, sea_layers=tuple(range(num_layers)), sea_k=16,
                  sea_predictor_length=16, student_attention=kind, attention_impl="official")
  return nnx.jit(lambda: opt.OPT(cfg, rngs=nnx.Rngs(0)))()


@pytest.mark.parametrize("kind", KINDS)
def test_attention_rows_are_what_the_layer_applies(kind):
  """student_attention_rows @ v reproduces the layer's attention output (before SEA's gates)."""
  model = _tiny_opt(kind)
  tokens = jax.random.randint(jax.random.key(1), (2, 64), 0, 64)
  attn = model.layers[0].self_attn
  x = model.layers[0].self_attn_layer_norm(
      model.embed_tokens(tokens) + model.embed_positions(jnp.arange(64) + opt.POSITION_OFFSET))
  n, t, _ = x.shape
  heads = lambda y: y.reshape(n, t, 2, 16).transpose(0, 2, 1, 3)  # noqa: E731
  q, k, v = heads(attn.q_proj(x) * 16 ** -0.5), heads(attn.k_proj(x)), heads(attn.v_proj(x))
  _, trace = attn(x)
  probs, attended = opt.student_attention_rows(attn, trace)
  np.testing.assert_allclose(jnp.sum(probs, -1), 1.0, rtol=1e-5)
  if kind == "sea":
    sea = attn.sea(q, k, v, return_intermediates=True)
    gate = sea.intermediates["gate_attn_scale"]
    np.testing.assert_allclose(probs * gate, sea.intermediates["partial_attention_probs"],
                               atol=1e-6)
    return
  want = trace.context.reshape(n, t, 2, 16).transpose(0, 2, 1, 3)
  got = jnp.einsum("bhqk,bhkd->bhqd", probs, v)
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)
  if kind == "local":  # at most k = 16 most recent keys, at least k - B + 1
    counts = np.asarray(attended[0, 0]).sum(-1)
    b = local_block(16)
    assert counts.max() == 16 and counts[16:].min() == 16 - b + 1
  else:
    assert attended is None


def test_local_student_reads_only_its_window(runs):
  """Tokens further back than the window do not change the local student's eval logits."""
  cfg, workdir, _ = runs["local"]
  run, state, _ = trainer.restore_for_eval(cfg, workdir)
  model, task = run.model(state), run.task
  assert len(model.student.layers) == 1  # one layer: the receptive field is the window
  t, k = cfg.data.seq_len, cfg.model.sea_k
  tokens = jax.random.randint(jax.random.key(0), (2, t), 0, cfg.model.vocab_size)
  cut = t // 2
  changed = tokens.at[:, :cut].set((tokens[:, :cut] + 7) % cfg.model.vocab_size)
  a = task.eval_forward(model, {"inputs": tokens})
  b = task.eval_forward(model, {"inputs": changed})
  assert a.shape == (2, t, cfg.model.vocab_size)
  # Query p reads keys >= p - k + 1 at most: positions >= cut + k - 1 never see the change.
  np.testing.assert_array_equal(a[:, cut + k - 1:], b[:, cut + k - 1:])
  assert not np.allclose(a[:, :cut], b[:, :cut])


def test_performer_attention_kl_at_init_is_finite():
  cfg = config_io.load_config(f"{CONFIG}:student,tiny,student_attention=performer")
  task = task_lib.get_task(cfg)
  model = nnx.jit(lambda: task.build_model(nnx.Rngs(0)))()
  tokens = jax.random.randint(jax.random.key(0), (2, cfg.data.seq_len), 0, 61)
  w = jnp.ones(tokens.shape, jnp.float32)
  _, metrics = task_lib.distillation_loss(model, tokens, tokens, w, task.opt_config)
  assert np.isfinite(float(metrics["attention_kl"])) and float(metrics["attention_kl"]) >= 0
  assert float(metrics["teacher_attention_covered"]) == 1.0


def test_dynamic_k_one_result_per_k_and_trained_k_equals_the_run(runs):
  cfg, workdir, final = runs["sea"]
  trained = cfg.model.sea_k
  ks = (trained // 2, trained, 2 * trained)
  results = dynamic_k.evaluate_at_k(cfg, workdir, ks)
  assert sorted(results) == sorted(ks)
  for k in ks:
    for b in ("near", "far"):
      assert np.isfinite(results[k][f"recall/validation/recall_{b}_ce"])
  for key, value in results[trained].items():
    np.testing.assert_allclose(value, final["eval/" + key], rtol=1e-6, err_msg=key)
  assert cfg.model.sea_k == trained  # the caller's config is not changed
  with pytest.raises(ValueError, match="dynamic k"):
    dynamic_k.evaluate_at_k(runs["performer"][0], runs["performer"][1], ks)


def test_student_config_errors():
  cfg = config_io.load_config(f"{CONFIG}:student,tiny,student_attention=local")
  cfg.model.vocab_size = 32
  with pytest.raises(ValueError, match="recall stream has 61 ids"):
    task_lib.get_task(cfg).validate(cfg)
  cfg.model.vocab_size = 64
  cfg.model.sea_k = 12
  with pytest.raises(ValueError, match="multiple of 8"):
    task_lib.get_task(cfg)
  cfg.model.sea_k = 48  # block 6 does not divide T = 128
  with pytest.raises(ValueError, match="seq_len=128 is not a multiple"):
    task_lib.get_task(cfg).validate(cfg)
  cfg.model.student_attention = "reformer"
  with pytest.raises(ValueError, match="student_attention='reformer'"):
    task_lib.get_task(cfg)
  with pytest.raises(ValueError, match="student_attention='bogus'"):
    config_io.load_config(f"{CONFIG}:student,tiny,student_attention=bogus")
