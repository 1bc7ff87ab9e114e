"""The SEA tasks end to end at tiny settings: a dense teacher run, its export into a distillation
run (frozen teacher in model_state, student from the teacher's weights), and the loss terms."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.train import checkpoint as ckpt_lib
from common.train import config_io, optim, trainer
from projects.sea import export_opt, task as task_lib  # noqa: F401
from projects.sea.config import OPTConfig

CONFIG = "projects/sea/configs/stdlib_demo.py"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("sea")
  teacher_cfg = config_io.load_config(f"{CONFIG}:teacher,tiny")
  teacher_final = trainer.train(teacher_cfg, str(root / "teacher"))
  student_cfg = config_io.load_config(f"{CONFIG}:student,tiny")
  export_opt.export_checkpoint(student_cfg, str(root / "init"),
                               dense_workdir=str(root / "teacher"))
  student_cfg.train.init_from = str(root / "init")
  student_final = trainer.train(student_cfg, str(root / "student"))
  return root, teacher_final, student_final, student_cfg


def test_distillation_run_keeps_teacher_frozen_and_reports_every_term(runs):
  root, teacher_final, final, cfg = runs
  assert np.isfinite(teacher_final["eval/strided/validation/ppl"])
  for key in ("ce", "kd/hidden_mse", "kd/logit_kl", "sea/estimate_kl", "sea/estimate_mse",
              "sea/dense_score_loss", "sea/context_mse", "sea/kept_key_fraction"):
    assert np.isfinite(final[f"train/{key}"]), key
  assert 0 < final["train/sea/kept_key_fraction"] < 1
  assert np.isfinite(final["eval/strided/validation/bits_per_token"])
  # The teacher lives in model_state (no optimiser moments) and equals the teacher run's weights
  # after training; the student's dense weights started there and moved.
  _, state, _ = trainer.restore_for_eval(cfg, str(root / "student"))
  _, tstate, _ = trainer.restore_for_eval(
      ckpt_lib.read_config(str(root / "teacher"))[1], str(root / "teacher"))
  assert "teacher" not in state["params"] and "teacher" in state["model_state"]
  assert "teacher" not in str(jax.tree_util.tree_structure(state["opt_state"]))
  want = tstate["params"]["layers"][0]["fc1"]["kernel"]
  np.testing.assert_array_equal(state["model_state"]["teacher"]["layers"][0]["fc1"]["kernel"],
                                want)
  student_fc1 = state["params"]["student"]["layers"][0]["fc1"]["kernel"]
  assert 0 < np.abs(np.asarray(student_fc1) - np.asarray(want)).max() < 0.1


def test_loss_is_the_official_combination_and_starts_from_the_teacher(runs):
  root, _, final, cfg = runs
  m = {k[len("train/"):]: v for k, v in final.items() if k.startswith("train/")}
  # Linear in the terms, so it also holds for metrics averaged over the logging window.
  np.testing.assert_allclose(
      m["loss"], 0.1 * m["ce"] + 5 * m["kd/hidden_mse"] + 0.2 * m["kd/logit_kl"]
      + m["sea/layer_loss"], rtol=1e-4)
  np.testing.assert_allclose(
      m["sea/layer_loss"], 0.1 * m["sea/estimate_kl"] + m["sea/estimate_mse"]
      + m["sea/dense_score_loss"] + m["sea/context_mse"], rtol=1e-4)
  # Step 0 (the export): the student's dense weights are the teacher's.
  run, init, _ = trainer.restore_for_eval(cfg, str(root / "init"))
  student, teacher = init["params"]["student"], init["model_state"]["teacher"]
  for path in (("embed_tokens", "embedding"), ("layers", 0, "self_attn", "q_proj", "kernel"),
               ("layers", 0, "fc2", "bias"), ("final_layer_norm", "scale")):
    a, b = student, teacher
    for key in path:
      a, b = a[key], b[key]
    np.testing.assert_array_equal(a, b)
  # The official lr groups select SEA's parameters by path: x10 there, x0.2 for the rest.
  multipliers = optim.lr_multiplier_tree(
      init["params"], optim.parse_lr_multipliers(cfg.optimizer.lr_multipliers))
  attn = multipliers["student"]["layers"][0]["self_attn"]
  assert set(jax.tree.leaves(attn["sea"])) == {10.0} and attn["q_proj"]["kernel"] == 0.2


def test_config_errors():
  cfg = config_io.load_config(f"{CONFIG}:student,tiny")
  cfg.model.sea_layers = "none"
  with pytest.raises(ValueError, match="nothing to distil"):
    task_lib.get_task(cfg).validate(cfg)
  cfg.model.mode = "bogus"
  with pytest.raises(ValueError, match="mode"):
    task_lib.get_task(cfg)
  with pytest.raises(ValueError, match="head_dim"):
    OPTConfig(vocab_size=8, hidden_size=10, num_layers=1, num_heads=3, ffn_dim=4)


@pytest.mark.parametrize("field,match", [
    ("nosuch", "unknown field config.model.nosuch"),
    ("sea_kk", "unknown field config.model.sea_kk \\(did you mean config.model.sea_k\\?\\)"),
    ("sea_attention_impl", "config.model.sea_attention_impl"),  # the old name of attention_impl
])
def test_misspelled_model_field_is_an_error_naming_it(field, match):
  cfg = config_io.load_config(f"{CONFIG}:student,tiny")
  task = task_lib.get_task(cfg)
  with cfg.unlocked():
    cfg.model[field] = 3
  with pytest.raises(ValueError, match=match):
    task.validate(cfg)  # what the trainer runs before building anything
  with pytest.raises(ValueError, match=match):
    task_lib.get_task(cfg)


def test_model_dtypes_and_attention_impl_reach_the_model():
  cfg = config_io.load_config(f"{CONFIG}:student,tiny")
  cfg.model.update(dict(param_dtype="bfloat16", dtype="bfloat16", attention_impl="reference",
                        remat_policy="full"))
  opt_config = task_lib.get_task(cfg).opt_config
  assert (opt_config.param_dtype, opt_config.dtype) == (jnp.bfloat16, jnp.bfloat16)
  model = nnx.eval_shape(lambda: task_lib.get_task(cfg).build_model(nnx.Rngs(0)))
  params = jax.tree.leaves(nnx.state(model.student, nnx.Param))
  assert params and {p.dtype for p in params} == {jnp.dtype(jnp.bfloat16)}
  assert model.student.layers[0].self_attn.sea.attention_impl == "reference"
  cfg.model.attention_impl = "kernel"  # SEA's old private vocabulary
  with pytest.raises(ValueError, match="attention_impl='kernel'"):
    task_lib.get_task(cfg)
