"""Text continuation from a checkpoint: `main.py --mode=sample` and the projects' sample CLIs.

Restores the checkpoint (newest, or `step`) onto whatever devices are present, then asks the
project's Task to continue the prompt (`Task.sample`: incremental decoding with its own cache).
"""
from __future__ import annotations

from common.train import checkpoint, trainer


def sample(config, workdir: str, prompt: str, *, num_tokens: int, temperature: float = 0.0,
           seed: int = 0, step: int | None = None) -> str:
  """The prompt followed by `num_tokens` generated tokens, as text. `config=None` reads the
  config saved beside the checkpoint (as `python -m common.eval` does)."""
  if not prompt:
    raise ValueError("--prompt='': give the text to continue (at least one character).")
  if num_tokens < 1 or temperature < 0:
    raise ValueError(f"num_tokens={num_tokens} must be >= 1 and temperature={temperature} >= 0.")
  if config is None:
    _, config = checkpoint.read_config(workdir, step)
  config = config.copy_and_resolve_references()
  # One prompt: plain data parallelism over the devices here, whatever mesh trained the run.
  config.mesh.shape = {"data": -1, **{k: 1 for k in config.mesh.shape if k != "data"}}
  run, state, _ = trainer.restore_for_eval(config, workdir, step=step)
  return run.task.sample(run.model(state), prompt, num_tokens=num_tokens,
                         temperature=temperature, seed=seed)
