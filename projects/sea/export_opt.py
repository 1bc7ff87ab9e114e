r"""Writes step 0 of a SEA run from dense OPT weights, for `config.train.init_from`.

  python -m projects.sea.export_opt --dense_workdir /tmp/sea/teacher \
      --config projects/sea/configs/stdlib_demo.py:student --workdir /tmp/sea/init

The source is a finished dense run of this project (mode 'lm'), or, through the converter CLI
(`python -m projects.sea.convert --hf DIR --to_checkpoint WORKDIR`, which calls
`export_checkpoint`), an HF OPT checkpoint directory (config.json + model.safetensors, converted
by third_party/hf_opt). Mode 'distill': the weights fill the frozen teacher and the student's
dense parts (official recipe: the student loads the teacher's state_dict, the SEA 'perlin'
modules start fresh); mode 'lm': the model.
"""
from __future__ import annotations

import jax
import numpy as np
from absl import app, flags
from flax import nnx
from ml_collections import config_flags

from common.train import checkpoint as ckpt_lib
from common.train import export, trainer
from projects.sea import weights
from projects.sea.task import get_task


def dense_tree_from_run(workdir: str) -> dict:
  """The dense OPT weights of a finished run of this project (its latest checkpoint)."""
  _, config = ckpt_lib.read_config(workdir)
  config.mesh.shape = {"data": -1, **{k: 1 for k in config.mesh.shape if k != "data"}}
  run, state, _ = trainer.restore_for_eval(config, workdir)
  model = run.model(state)
  model = run.task.student(model)
  return jax.tree.map(np.asarray, weights.dense_tree(model))


def dense_tree_from_hf(hf_dir: str, opt_config) -> dict:
  from third_party import hf_opt  # pylint: disable=g-import-not-at-top
  fields, tree = hf_opt.read_checkpoint(hf_dir)
  mine = {k: getattr(opt_config, k) for k in fields}
  if mine != fields:
    raise ValueError(f"{hf_dir}/config.json has {fields}; the config builds {mine}. Pick the "
                     "matching preset (configs/opt.py:opt-125m or opt-1.3b).")
  return tree


def build_with_dense(config, tree: dict) -> nnx.Module:
  """The config's model, initialised by its seed, with `tree` in its dense (and teacher) slots."""
  task = get_task(config)
  model = nnx.jit(lambda: task.build_model(nnx.Rngs(config.seed)))()
  if task.mode == "distill":
    weights.load_dense(model.student, tree)
    weights.load_dense(model.teacher, tree)
  else:
    weights.load_dense(model, tree)
  return model


def export_checkpoint(config, workdir: str, *, hf_dir: str = "", dense_workdir: str = "") -> str:
  if bool(hf_dir) == bool(dense_workdir):
    raise ValueError("give exactly one weight source: hf_dir (an HF OPT folder) or "
                     "dense_workdir (a finished dense run).")
  task = get_task(config)
  tree = (dense_tree_from_hf(hf_dir, task.opt_config) if hf_dir
          else dense_tree_from_run(dense_workdir))
  return export.write_checkpoint(build_with_dense(config, tree), config, workdir)


def _main_with_flags() -> None:
  # Flags are defined only when run as a program: importing this module (demo.py, tests) next to
  # common.train.main, which defines --config and --workdir too, must not clash.
  config = config_flags.DEFINE_config_file("config", None, "SEA config `path.py:args`.")
  workdir = flags.DEFINE_string("workdir", None, "Where step 0 is written.")
  dense = flags.DEFINE_string("dense_workdir", None, "A finished dense run of this project "
                              "(HF OPT weights: python -m projects.sea.convert --hf DIR).")
  flags.mark_flags_as_required(["config", "workdir", "dense_workdir"])

  def main(argv):
    del argv
    print(export_checkpoint(config.value, workdir.value, dense_workdir=dense.value))

  app.run(main)


if __name__ == "__main__":
  _main_with_flags()
