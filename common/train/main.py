"""Command-line entry shared by every `projects/<name>/main.py`.

  python projects/<name>/main.py --config projects/<name>/configs/<file>.py:<args> \
      --workdir DIR [--config.train.num_steps=...] [--mode=train|eval|sample]

--mode=sample (language models): restores the checkpoint (latest or --checkpoint_step) and prints
--prompt continued by --num_tokens tokens (--temperature 0 = greedy; common/train/sample.py).

On several hosts (a TPU pod slice, or processes started with --coordinator_address /
--num_processes / --process_id, or --multihost under Slurm / Open MPI) jax.distributed is
initialised before anything touches devices (common.train.multihost); the README's
"Multi-host" section shows the launch scripts.

A config error, a missing dataset or checkpoint, or a guard that stops the run (another run holds
the workdir; its checkpoints are another model's) prints one line, `error: ...`, and exits 2;
--traceback shows the full trace instead.
"""
from __future__ import annotations

import json
import logging
import re
import sys

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
_FALLBACK = flags.DEFINE_bool(
    "restore_fallback", False,
    "If the newest checkpoint's files are unreadable (damaged), move it to "
    "<workdir>/checkpoints_unreadable/ and resume from the newest readable one. Never moves a "
    "checkpoint whose files are intact (e.g. one of a run with another config).")
_FRESH = flags.DEFINE_bool(
    "start_fresh", False,
    "Train from step 0 even though --workdir holds a run: its checkpoints and metrics are first "
    "moved to <workdir>/previous_<UTC time>/ (nothing is deleted).")
_TRACEBACK = flags.DEFINE_bool("traceback", False,
                               "On an error, print the full Python traceback, not one line.")
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
    final = trainer.train(config, _WORKDIR.value, restore_fallback=_FALLBACK.value,
                          start_fresh=_FRESH.value)
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


# Errors that are the user's to fix (a config value, a missing dataset or checkpoint, a guard):
# one line is the whole message. Anything else is a bug and keeps its traceback.
def _user_errors() -> tuple[type[BaseException], ...]:
  from common.train import checkpoint, run_guards
  return (ValueError, OSError, checkpoint.CheckpointError, run_guards.GuardError)


def _exit_with_error(text: str) -> None:
  """Prints `error: text` and exits 2. One write, newline included: print() writes the text and
  its newline separately, and a C++ library logging to stderr from another thread (Gloo, at
  jax.distributed start-up) could land between them and join our line."""
  sys.stderr.write(f"error: {text}\n")
  sys.stderr.flush()
  sys.exit(2)


def _main_or_one_line(project: str) -> None:
  try:
    _main(project)
  except _user_errors() as e:
    if _TRACEBACK.value:
      raise
    _exit_with_error(_one_line(e))


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a misspelled override or a bad value reported in one line."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError, OSError) as e:
    if "--traceback" in argv:
      raise
    _exit_with_error(_flag_error(argv, e))


def _flag_error(argv: list[str], e: BaseException) -> str:
  text = " ".join(str(e).replace("\\n", " ").replace("\\'", "'").split())
  # ml_collections reports an unknown override field as KeyError("'name' Did you mean ...").
  name = re.search(r"'(\w+)'", text)
  guess = re.search(r'Did you mean "(\w+)"', text)
  if isinstance(e, (AttributeError, KeyError)) and name:
    for arg in argv[1:]:
      path = arg.split("=")[0][2:]
      if arg.startswith("--config.") and name.group(1) in path.split("."):
        hint = f"; did you mean {guess.group(1)!r}?" if guess else ""
        return f"{arg}: the config has no field {path!r}{hint}"
  return text


def _one_line(e: BaseException) -> str:
  text = " ".join(str(e).split())
  if "Failed loading config file" in text:  # ml_collections: the --config file is missing
    return "--config: " + text[text.index("Attempted"):]
  return text


def _print_help(project: str) -> None:
  """`main.py --help`: this CLI's flags, exit 0 (absl alone lists none and exits 1)."""
  print(f"usage: python projects/{project}/main.py --config FILE.py[:ARGS] --workdir DIR "
        "[--config.<field>=VALUE ...] [flags]\n")
  project_doc = getattr(sys.modules.get("__main__"), "__doc__", None)
  print((project_doc or __doc__).strip(), "\n")
  print("flags:")
  print(flags.FLAGS.module_help(sys.modules[__name__]))
  print("\n  --config.<section>.<field>=VALUE: override any field of the config file, e.g. "
        "--config.train.num_steps=100.")


def run(project: str) -> None:
  """Called by projects/<project>/main.py."""
  if any(a in ("-h", "--help", "-help", "--helpshort") for a in sys.argv[1:]):
    _print_help(project)
    sys.exit(0)
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(lambda argv: _main_or_one_line(project), flags_parser=_parse_flags)
