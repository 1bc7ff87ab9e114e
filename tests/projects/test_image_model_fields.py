"""svit and biformer: a misspelled or unsupported config.model field stops the run, named.

Both projects check config.model through common/tasks/image_configs.py (`model_config_from`),
before the Task builds anything; one parametrised test covers each project.
"""
import importlib
import pathlib

import jax.numpy as jnp
import pytest

from common.train import config_io

ROOT = pathlib.Path(__file__).resolve().parents[2]

# (project, config.model field path, value, the error it must raise)
CASES = [
    ("svit", "nosuch", 3, "unknown field config.model.nosuch"),
    ("svit", "remat_polcy", "full", "did you mean config.model.remat_policy"),
    ("svit", "arch.stoken_sizes", 4, "did you mean config.model.arch.stoken_size"),
    ("svit", "arch.in_chans", 3, "unknown field config.model.arch.in_chans"),  # data decides
    ("svit", "vit.widht", 8, "did you mean config.model.vit.width"),
    ("svit", "attention_impl", "auto", "unknown field config.model.attention_impl"),
    ("svit", "remat_policy", "sometimes", "remat_policy='sometimes'"),
    ("biformer", "nosuch", 3, "unknown field config.model.nosuch"),
    ("biformer", "atention_impl", "auto", "did you mean config.model.attention_impl"),
    ("biformer", "drop_path", 0.1, "did you mean config.model.drop_path_rate"),
    ("biformer", "arch.topk", 2, "did you mean config.model.arch.topks"),
    ("biformer", "arch.num_classes", 5, "unknown field config.model.arch.num_classes"),
    ("biformer", "mixup.mixup_alfa", 0.1, "did you mean config.model.mixup.mixup_alpha"),
    ("biformer", "attention_impl", "gather", "attention_impl='gather'"),  # the old vocabulary
    ("biformer", "dtype", "float8", "dtype"),
    # the backbone fields (README, "Backbone for dense prediction")
    ("svit", "arch.out_indice", (0,), "did you mean config.model.arch.out_indices"),
    ("svit", "arch.out_indices", (2, 1), r"out_indices=\(2, 1\) is invalid"),
    ("biformer", "arch.out_norms", True, "did you mean config.model.arch.out_norm"),
    ("biformer", "arch.out_indices", (0, 4), r"out_indices=\(0, 4\) is invalid"),
]


def _tiny(project):
  return config_io.load_config(f"{ROOT}/projects/{project}/configs/mnist_demo.py:{project},tiny")


@pytest.mark.parametrize("project,path,value,message", CASES,
                         ids=[f"{c[0]}-{c[1]}={c[2]}" for c in CASES])
def test_bad_model_field_is_named_before_building(project, path, value, message):
  config = _tiny(project)
  *sections, field = path.split(".")
  target = config.model
  for section in sections:
    target = target[section]
  target.unlock()
  target[field] = value
  task_lib = importlib.import_module(f"projects.{project}.task")
  with pytest.raises(ValueError, match=message):
    task_lib.get_task(config)  # the Task checks config.model first (validate)


@pytest.mark.parametrize("project", ["svit", "biformer"])
def test_run_fields_reach_the_model_config(project):
  config = _tiny(project)
  config.model.remat_policy = "dots_saveable"
  config.model.dtype = "bfloat16"
  if project == "biformer":
    config.model.attention_impl = "auto"  # a kernel impl, passed on unchanged
  arch = importlib.import_module(f"projects.{project}.task").get_task(config).model_config()
  assert (arch.remat_policy, arch.dtype, arch.param_dtype) == (
      "dots_saveable", jnp.bfloat16, jnp.float32)
  assert arch.num_classes == 10 and arch.in_chans == 1
  assert getattr(arch, "attention_impl", "auto") == "auto"
