"""svit and biformer: official weights -> trainer checkpoint (convert.py --to_checkpoint, the shared
common/tasks/image_convert.py) -> `trainer.restore_for_eval` reproduces the golden logits."""
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import common  # noqa: F401
from common import convert_cli
from common.train import checkpoint as ckpt_lib
from common.train import trainer
from tests import golden

# project -> its golden case
CASES = {"svit": "stvit/tiny_s0", "biformer": "biformer/tiny_s0"}


def _cli(project):
  return importlib.import_module(f"projects.{project}.convert")


@pytest.fixture(scope="module", params=sorted(CASES))
def converted(request, tmp_path_factory):
  """(project, its golden case folder, the checkpoint folder written from the case)."""
  project = request.param
  case = golden.folder(CASES[project])
  out = tmp_path_factory.mktemp(f"{project}_ckpt")
  assert _cli(project).main(["--case", str(case), "--to_checkpoint", str(out)]) == 0
  return project, case, out


def test_restore_for_eval_reproduces_golden_logits(converted):
  project, case, workdir = converted
  step, config = ckpt_lib.read_config(str(workdir))
  assert step == 0 and config.project == project
  run, state, step = trainer.restore_for_eval(config, str(workdir))
  model = run.model(state)
  x = jnp.asarray(convert_cli.load_npz(str(case / "inputs.npz"))["x"]).transpose(0, 2, 3, 1)
  with jax.default_matmul_precision("highest"):
    logits = nnx.jit(lambda m, x: m(x))(model, x)
  expected = convert_cli.load_npz(str(case / "outputs.npz"))["logits"]
  assert convert_cli.scored_error(np.asarray(logits), expected) <= 2e-5


@pytest.mark.parametrize("project", sorted(CASES))
def test_to_checkpoint_needs_weights(project, tmp_path, capsys):
  with pytest.raises(SystemExit) as info:
    _cli(project).main(["--to_checkpoint", str(tmp_path)])
  assert info.value.code == 2
  assert "--state_dict" in capsys.readouterr().err
