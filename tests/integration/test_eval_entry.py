"""`python -m common.eval --workdir DIR` restores a project's checkpoint with no project flags.

The run is lazy_neuron's tiny ViT trained on 8 devices; the evaluation is a fresh process with
one device, so the restore also crosses meshes.
"""
import json
import subprocess
import sys

from common.train import config_io, trainer
from tests.integration.launch import REPO, TIMEOUT_S, cpu_env


def test_common_eval_restores_lazy_neuron_tiny(tmp_path):
  config = config_io.load_config(str(REPO / "projects/lazy_neuron/configs/vit_mnist.py:tiny"),
                                 **{"train.progress_bar": False, "eval.max_batches": 1,
                                    "eval.evaluators": ("classification",)})
  trainer.train(config, str(tmp_path))
  out = subprocess.run([sys.executable, "-m", "common.eval", f"--workdir={tmp_path}"],
                       env=cpu_env(devices=1), capture_output=True, text=True, timeout=TIMEOUT_S,
                       cwd=str(tmp_path))  # not the repo root: the installed package is used
  assert out.returncode == 0, out.stderr[-4000:]
  results = json.loads(out.stdout)
  assert results["step"] == config.train.num_steps
  accuracy = [k for k in results if k.startswith("classification/") and k.endswith("accuracy")]
  assert accuracy and all(0.0 <= results[k] <= 1.0 for k in accuracy), sorted(results)
