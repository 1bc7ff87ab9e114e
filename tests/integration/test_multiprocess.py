"""Two processes x 4 CPU devices train exactly like one process x 8; their checkpoint resumes
on one process, another mesh (2x4 -> 8x1) and one device.

The processes talk through jax.distributed (gRPC coordinator on localhost) and gloo CPU
collectives, the same code path as hosts of a TPU pod slice or a GPU cluster.
"""
import os
import shutil

import jax
import numpy as np
import pytest
from common.train import checkpoint, metrics, toy_task, trainer
from tests.integration.launch import cpu_env, free_port, run_processes, toy_command, toy_config

if not hasattr(jax.config, "jax_cpu_collectives_implementation"):
  pytest.skip("this jax has no CPU collectives across processes", allow_module_level=True)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("two_processes"))
  port = free_port()
  run_processes([toy_command(workdir, f"--coordinator_address=localhost:{port}",
                             "--num_processes=2", f"--process_id={i}") for i in range(2)],
                env=cpu_env(devices=4))
  return workdir


def _losses(workdir):
  rows = metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _state(workdir, config, devices=None):
  _, state, step = trainer.restore_for_eval(config, workdir, task=toy_task.ToyTask(config),
                                            devices=devices)
  return step, jax.device_get(state)


def test_two_processes_match_one_process(two_process_run, reference):
  ref_dir, _ = reference
  two, one = _losses(two_process_run), _losses(ref_dir)
  # Metrics are written once (process 0), one row per step, and the curves agree to rounding:
  # the global batch at every step is the same examples in the same rows.
  assert sorted(two) == sorted(one) == list(range(1, 21))
  np.testing.assert_allclose([two[s] for s in one], [one[s] for s in one], rtol=1e-5)
  # Each process saved its data position; they are equal (counted in global batches).
  data = os.path.join(two_process_run, "checkpoints", "20", "data")
  files = sorted(f for f in os.listdir(data) if f.endswith(".json"))
  assert files == ["process_0-of-2.json", "process_1-of-2.json"]
  texts = {open(os.path.join(data, f)).read() for f in files}
  assert len(texts) == 1


def test_two_process_checkpoint_resumes_on_one_process_and_other_meshes(
    two_process_run, reference, tmp_path):
  ref_dir, ref_config = reference
  # Resume training from the 2-process step 10 on one process with an 8x1 mesh: the data
  # position is re-derived exactly, so steps 11-20 match the uninterrupted run.
  shutil.copytree(os.path.join(two_process_run, "checkpoints", "10"),
                  tmp_path / "checkpoints" / "10")
  c = toy_config()
  c.mesh.shape = {"data": 8, "fsdp": 1, "model": 1, "expert": 1}
  trainer.train(c, str(tmp_path), task=toy_task.ToyTask(c))
  resumed, ref = _losses(str(tmp_path)), _losses(ref_dir)
  assert sorted(resumed) == list(range(11, 21))
  np.testing.assert_allclose([resumed[s] for s in resumed], [ref[s] for s in resumed], rtol=1e-5)
  assert checkpoint.Checkpointer(str(tmp_path)).all_steps() == [10, 20]
  # Evaluation restores the same checkpoint onto a single device.
  c.mesh.shape = {"data": -1, "fsdp": 1, "model": 1, "expert": 1}
  step, on_one = _state(str(tmp_path), c, devices=jax.devices()[:1])
  _, on_ref = _state(ref_dir, ref_config)
  assert step == 20
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               on_one["params"], on_ref["params"])
