"""Config validation that runs before anything is built or compiled.

A wrong field should cost a researcher seconds, not a compile and a queue slot: every check
here names the field, the value and what is allowed.
"""
from __future__ import annotations

import os
import shutil

import jax
import ml_collections

from common.train import defaults, optim

DTYPES = ("float32", "bfloat16", "float16")
NONFINITE = ("stop", "skip")
# Sections whose every field the trainer owns; project configs may not add fields here.
# (`eval` is shared: projects add their evaluators' settings to it.)
_OWNED = ("mesh", "train", "optimizer")


def _check_known_fields(config: ml_collections.ConfigDict) -> None:
  base = defaults.base_config()
  for section in _OWNED:
    if section not in config:
      continue
    known = set(base[section].keys())
    unknown = sorted(set(config[section].keys()) - known)
    if unknown:
      raise ValueError(f"unknown field(s) config.{section}.{unknown[0]}"
                       f"{' (and ' + ', '.join(unknown[1:]) + ')' if unknown[1:] else ''}; "
                       f"known fields of config.{section}: {sorted(known)}.")
  unknown_top = sorted(set(config.keys()) - set(base.keys()))
  if unknown_top:
    raise ValueError(f"unknown top-level config field(s) {unknown_top}; known: {sorted(base.keys())}.")


def _positive_int(value, name: str, allow_zero: bool = False) -> None:
  lo = 0 if allow_zero else 1
  if isinstance(value, bool) or not isinstance(value, int) or value < lo:
    raise ValueError(f"config.{name}={value!r}: must be an integer >= {lo}.")


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError for the first problem found."""
  _check_known_fields(config)
  t, o, m = config.train, config.optimizer, config.model
  _positive_int(t.batch_size, "train.batch_size")
  _positive_int(t.num_steps, "train.num_steps")
  _positive_int(t.grad_accum_steps, "train.grad_accum_steps")
  for f in ("log_every", "checkpoint_every", "keep_checkpoints"):
    _positive_int(t[f], f"train.{f}")
  _positive_int(t.eval_every, "train.eval_every", allow_zero=True)
  if t.batch_size % t.grad_accum_steps:
    raise ValueError(f"config.train.batch_size={t.batch_size} is not divisible by "
                     f"config.train.grad_accum_steps={t.grad_accum_steps}.")
  if t.nonfinite not in NONFINITE:
    raise ValueError(f"config.train.nonfinite={t.nonfinite!r}; allowed: {NONFINITE}.")
  if t.profile_steps and (len(t.profile_steps) != 2 or t.profile_steps[0] >= t.profile_steps[1]):
    raise ValueError(f"config.train.profile_steps={tuple(t.profile_steps)!r}: give (first, end) "
                     "with first < end, or () for no trace.")
  if o.name not in optim.OPTIMIZERS:
    raise ValueError(f"config.optimizer.name={o.name!r}; allowed: {optim.OPTIMIZERS}.")
  if o.schedule not in optim.SCHEDULES:
    raise ValueError(f"config.optimizer.schedule={o.schedule!r}; allowed: {optim.SCHEDULES}.")
  if o.weight_decay_mask not in optim.DECAY_MASKS:
    raise ValueError(f"config.optimizer.weight_decay_mask={o.weight_decay_mask!r}; "
                     f"allowed: {optim.DECAY_MASKS}.")
  if not (isinstance(o.learning_rate, (int, float)) and o.learning_rate > 0):
    raise ValueError(f"config.optimizer.learning_rate={o.learning_rate!r}: must be a number > 0.")
  if o.get("weight_decay_schedule", "constant") not in optim.WD_SCHEDULES:
    raise ValueError(f"config.optimizer.weight_decay_schedule={o.weight_decay_schedule!r}; "
                     f"allowed: {optim.WD_SCHEDULES}.")
  if o.get("weight_decay_schedule", "constant") != "constant" and o.name != "adamw":
    raise ValueError(f"config.optimizer.weight_decay_schedule={o.weight_decay_schedule!r} is "
                     f"implemented for adamw only, not config.optimizer.name={o.name!r}.")
  optim.parse_lr_multipliers(o.get("lr_multipliers", ()))
  if not 0.0 <= o.ema_decay < 1.0:
    raise ValueError(f"config.optimizer.ema_decay={o.ema_decay!r}: must be in [0, 1).")
  if o.warmup_steps < 0 or o.warmup_steps > t.num_steps:
    raise ValueError(f"config.optimizer.warmup_steps={o.warmup_steps!r}: must be in "
                     f"[0, config.train.num_steps={t.num_steps}].")
  for f in ("dtype", "param_dtype"):
    if m.get(f, "float32") not in DTYPES:
      raise ValueError(f"config.model.{f}={m.get(f)!r}; allowed: {DTYPES}.")
  _positive_int(config.eval.batch_size, "eval.batch_size")
  if not config.get("project"):
    raise ValueError("config.project is empty: set it to the project's folder name, "
                     "e.g. config.project = 'lazy_neuron'.")


def validate_against_devices(config: ml_collections.ConfigDict, batch_shards: int) -> None:
  """Checks that need the mesh: the global batch must split evenly over data shards and hosts."""
  per_micro = config.train.batch_size // config.train.grad_accum_steps
  if per_micro % batch_shards:
    raise ValueError(
        f"config.train.batch_size={config.train.batch_size} (per micro-batch {per_micro}) is not "
        f"divisible by the {batch_shards} data shards of the mesh {dict(config.mesh.shape)} on "
        f"{jax.device_count()} devices; use a multiple of {batch_shards}.")
  if config.train.batch_size % jax.process_count():
    raise ValueError(f"config.train.batch_size={config.train.batch_size} is not divisible by the "
                     f"{jax.process_count()} processes.")
  if config.eval.batch_size % batch_shards:
    raise ValueError(f"config.eval.batch_size={config.eval.batch_size} is not divisible by the "
                     f"{batch_shards} data shards; use a multiple of {batch_shards}.")


def check_workdir(workdir: str, min_free_bytes: int = 64 << 20) -> None:
  """Fails before training if checkpoints could not be written."""
  if "://" in workdir:
    raise ValueError(f"--workdir={workdir!r}: URLs are not supported (metrics are written with "
                     "plain file I/O); mount the bucket (e.g. gcsfuse) on every host and pass the "
                     "mount path.")
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_probe_{os.getpid()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise ValueError(f"--workdir={workdir!r} is not writable ({e.strerror}); choose a directory "
                     "you can write to.") from e
  free = shutil.disk_usage(workdir).free
  if free < min_free_bytes:
    raise ValueError(f"--workdir={workdir!r} has only {free >> 20} MiB free; checkpoints need at "
                     f"least {min_free_bytes >> 20} MiB. Free space or choose another directory.")
