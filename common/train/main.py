"""Command-line entry shared by every `projects/<name>/main.py`.

  python projects/<name>/main.py --config projects/<name>/configs/<file>.py:<args> \
      --workdir DIR [--config.train.num_steps=...] [--mode=train|eval|sample]

--mode=sample (language models): restores the checkpoint (latest or --checkpoint_step) and prints
--prompt continued by --num_tokens tokens (--temperature 0 = greedy; common/train/sample.py).

On several hosts (a TPU pod slice, or processes started with --coordinator_address /
--num_processes / --process_id, or --multihost under Slurm / Open MPI) jax.distributed is
initialised before anything touches devices (common.train.multihost). See docs_multihost.md.
"""
from __future__ import annotations

import json
import logging

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, `path.py:args`.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, config.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval", "sample"],
                          "Train (resuming), evaluate, or sample a continuation (LMs).")
_STEP = flags.DEFINE_integer("checkpoint_step", None,
                             "Evaluate / sample this step (default: latest).")
_PROMPT = flags.DEFINE_string("prompt", "", "--mode=sample: the text to continue.")
_NUM_TOKENS = flags.DEFINE_integer("num_tokens", 128, "--mode=sample: tokens to generate.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "--mode=sample: 0 = greedy.")
_SEED = flags.DEFINE_integer("sample_seed", 0, "--mode=sample: sampling seed.")
_FALLBACK = flags.DEFINE_bool("restore_fallback", False,
                              "If the newest checkpoint is unreadable, resume from the one before.")
_COORD = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-host).")
_NPROC = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-host).")
_PID = flags.DEFINE_integer("process_id", None, "This process's index (multi-host).")
_MULTIHOST = flags.DEFINE_bool("multihost", False,
                               "Initialise jax.distributed from the environment (TPU VM pods are "
                               "detected without it; Slurm and Open MPI need it).")
_LOCAL_IDS = flags.DEFINE_list("local_device_ids", None,
                               "Devices this process drives (one process per GPU), e.g. 0.")


def _maybe_init_distributed() -> None:
  from common.train import multihost
  local = [int(i) for i in _LOCAL_IDS.value] if _LOCAL_IDS.value else None
  multihost.initialize(coordinator_address=_COORD.value, num_processes=_NPROC.value,
                       process_id=_PID.value, local_device_ids=local,
                       from_environment=_MULTIHOST.value)


def _main(project: str) -> None:
  if _WORKDIR.value is None:
    raise app.UsageError("--workdir is required (checkpoints and metrics go there).")
  config = _CONFIG.value
  if config is None:
    raise app.UsageError(f"--config is required, e.g. --config projects/{project}/configs/<file>.py")
  if config.get("project") != project:
    raise app.UsageError(f"the config is for project {config.get('project')!r}, but this is "
                         f"projects/{project}/main.py; use that project's main.py.")
  _maybe_init_distributed()
  from common.train import trainer
  logging.getLogger().setLevel(logging.INFO)
  if _MODE.value == "train":
    final = trainer.train(config, _WORKDIR.value, restore_fallback=_FALLBACK.value)
  elif _MODE.value == "sample":
    from common.train import sample
    text = sample.sample(config, _WORKDIR.value, _PROMPT.value, num_tokens=_NUM_TOKENS.value,
                         temperature=_TEMPERATURE.value, seed=_SEED.value, step=_STEP.value)
    import jax
    if jax.process_index() == 0:  # every process decodes the same (global) tokens
      print(text)
    return
  else:
    run, state, step = trainer.restore_for_eval(config, _WORKDIR.value, step=_STEP.value)
    final = trainer.evaluate(run, state, step)
    final["step"] = step
  import jax
  if jax.process_index() == 0:  # every process holds the same (global) results
    print(json.dumps(final, indent=1, sort_keys=True))


def run(project: str) -> None:
  """Called by projects/<project>/main.py."""
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(lambda argv: _main(project))
