"""Official weights -> trainer checkpoint -> `trainer.restore_for_eval` reproduces golden logits."""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import common  # noqa: F401
from common.train import checkpoint as ckpt_lib
from common.train import trainer
from projects.svit import convert as cli
from third_party.stvit import case as case_lib

GOLDEN = pathlib.Path(__file__).resolve().parents[3].parent / "shared" / "golden" / "stvit"
CASE = GOLDEN / "tiny_s0"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  if not CASE.is_dir():
    pytest.skip(f"golden data absent: {CASE}")
  out = tmp_path_factory.mktemp("svit_ckpt")
  assert cli.main(["--case", str(CASE), "--to_checkpoint", str(out)]) == 0
  return out


def test_restore_for_eval_reproduces_golden_logits(workdir):
  step, config = ckpt_lib.read_config(str(workdir))
  assert step == 0 and config.project == "svit"
  run, state, step = trainer.restore_for_eval(config, str(workdir))
  model = run.model(state)
  x = jnp.asarray(case_lib.load_npz(str(CASE / "inputs.npz"))["x"]).transpose(0, 2, 3, 1)
  with jax.default_matmul_precision("highest"):
    logits = nnx.jit(lambda m, x: m(x))(model, x)
  expected = case_lib.load_npz(str(CASE / "outputs.npz"))["logits"]
  assert case_lib.scored_error(np.asarray(logits), expected) <= 2e-5


def test_to_checkpoint_needs_weights(tmp_path, capsys):
  assert cli.main(["--to_checkpoint", str(tmp_path)]) == 2
  assert "--state_dict" in capsys.readouterr().err
