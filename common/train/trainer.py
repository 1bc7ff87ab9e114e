"""The shared training loop: config -> mesh -> data -> model -> jit step -> loop -> checkpoints.

Read top to bottom, `train` is the whole life of a run:
  1. validate the config (before anything is compiled),
  2. build the mesh, the optimiser and the abstract state with its shardings,
  3. restore the newest checkpoint in the workdir, or initialise under jax.jit into shardings,
  4. step: one jit-compiled, donated train step per batch,
  5. log, evaluate and checkpoint on schedule; on SIGTERM save and exit cleanly,
  6. at the end: final checkpoint, final evaluation, `final_metrics.json`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from common.eval import registry as eval_registry
from common.eval.context import EvalContext
from common.train import checkpoint as ckpt_lib
from common.train import config_checks
from common.train import mesh as mesh_lib
from common.train import metrics as metrics_lib
from common.train import optim
from common.train import run_guards
from common.train import sharding as sharding_lib
from common.train import state as state_lib
from common.train import step as step_lib
from common.train.task import Task, load_task


class NonFiniteError(FloatingPointError):
  """Raised when config.train.nonfinite == 'stop' and a step produced NaN/Inf."""


@dataclasses.dataclass
class Run:
  """What setup() builds; shared by training and evaluation."""
  config: ml_collections.ConfigDict
  task: Task
  mesh: jax.sharding.Mesh
  rules: dict
  spec: state_lib.ModelSpec
  tx: Any
  lr_schedule: Any
  abstract_state: Any
  shardings: Any
  # Built once per run (their jitted steps compile once), from config.eval.evaluators.
  evaluators: dict[str, eval_registry.Evaluator]

  def put_batch(self, batch: dict) -> dict:
    return sharding_lib.put_batch(batch, self.mesh, self.rules)

  def model(self, state: dict, *, ema: bool = False) -> nnx.Module:
    return self.spec.merge(state["ema_params" if ema else "params"], state["model_state"])

  def eval_context(self) -> EvalContext:
    return EvalContext(config=self.config, task=self.task, mesh=self.mesh,
                       put_batch=self.put_batch)


def setup(config: ml_collections.ConfigDict, task: Task | None = None,
          devices: list | None = None, *, check_data: bool = True) -> Run:
  """Validates the config and builds everything static about a run (nothing is compiled).

  `check_data=False` skips the data-layer check (that the dataset is prepared), for tools that
  feed their own batches, such as benchmarks on random inputs.
  """
  config_checks.validate(config)
  task = task or load_task(config)
  task.validate(config)  # project-specific checks (e.g. sequence length vs attention block)
  evaluators = eval_registry.build(config, task)  # unknown names fail before anything compiles
  if check_data:
    _validate_data(config)
  mesh = mesh_lib.make_mesh(config.mesh.shape, devices)
  rules = sharding_lib.rules_dict(config.mesh.rules)
  config_checks.validate_against_devices(config, sharding_lib.batch_shards(mesh, rules))
  tx, lr = optim.make_optimizer(config.optimizer, config.train.num_steps)
  spec = state_lib.model_spec(task.build_model, config.seed)
  ema = config.optimizer.ema_decay > 0
  abstract, shardings = state_lib.abstract_state_and_shardings(
      spec, task.build_model, tx, seed=config.seed, ema=ema, mesh=mesh, rules=rules)
  return Run(config, task, mesh, rules, spec, tx, lr, abstract, shardings, evaluators)


def _validate_data(config) -> None:
  if config.data.get("name"):
    from common.data import pipeline  # pylint: disable=g-import-not-at-top
    pipeline.validate(config.data)


def init_state(run: Run) -> dict:
  init = lambda: state_lib.init_state(run.task.build_model, run.tx, seed=run.config.seed,
                                      ema="ema_params" in run.abstract_state)
  with run.mesh:
    return jax.jit(init, out_shardings=run.shardings)()


def restore_target(run: Run) -> Any:
  return state_lib.with_shardings(run.abstract_state, run.shardings)


class _Preemption:
  """Turns SIGTERM (TPU VM maintenance, Slurm, `kill`) into a stop at an agreed step boundary.

  One process: a Python handler sets a flag the loop checks each step. Several processes: each
  must save at the SAME step or the collectives deadlock, so the decision comes from JAX's
  preemption service (`reached_preemption_sync_point`), which hears SIGTERM on any host and
  names one step for all. The Python handler is then not installed: it would replace the
  service's own signal handler.
  """

  def __init__(self):
    self.requested = False
    self._previous = None
    self._multi = jax.process_count() > 1

  def __enter__(self):
    if not self._multi and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    logging.warning("SIGTERM received: saving a checkpoint at the next step boundary, then exiting.")
    self.requested = True

  def check(self, step: int) -> bool:
    """Called once per step on every process; True when this step must save and exit."""
    if self._multi and not self.requested:
      from jax.experimental import multihost_utils
      try:
        self.requested = bool(multihost_utils.reached_preemption_sync_point(step))
      except RuntimeError:  # jax.distributed without the preemption service
        pass
    return self.requested

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _health_check(state: dict, config, writer, step: int) -> None:
  health = jax.device_get(state["health"])
  first = int(health["first_nonfinite_step"])
  if first >= 0 and config.train.nonfinite == "stop":
    cause = step_lib.NONFINITE_CAUSES.get(int(health["first_nonfinite_cause"]), "value")
    metrics = {"loss": "'loss'", "gradient norm": "'grad_norm'",
               "loss and gradient norm": "'loss' and 'grad_norm'"}.get(cause, "unknown")
    raise NonFiniteError(
        f"non-finite {cause} at step {first} (metric {metrics} is NaN or Inf): training stopped "
        f"and that update was not applied "
        f"(the last checkpoint is from before it). Lower the learning rate, enable "
        f"config.optimizer.grad_clip_norm, or set config.train.nonfinite='skip' to skip such steps.")
  if int(health["skipped_steps"]):
    writer.write(step, {"skipped_nonfinite_steps": int(health["skipped_steps"])})


def evaluate(run: Run, state: dict, step: int | None = None) -> dict[str, float]:
  """Runs the run's evaluators (and on the EMA parameters too when there are some)."""
  results: dict[str, float] = {}
  ctx = run.eval_context()
  variants = [("", False)] + ([("ema/", True)] if "ema_params" in state else [])
  for prefix, ema in variants:
    model = run.model(state, ema=ema)
    for name, evaluator in run.evaluators.items():
      for k, v in evaluator(model, ctx).items():
        results[f"{prefix}{name}/{k}"] = float(v)
  return results


def train(config: ml_collections.ConfigDict, workdir: str, *, task: Task | None = None,
          restore_fallback: bool = False, start_fresh: bool = False,
          stop_after: int | None = None) -> dict[str, float]:
  """Trains (resuming from `workdir` if it holds checkpoints) and returns the final metrics.

  The run holds `workdir`'s lock throughout (run_guards.WorkdirLock). `start_fresh` moves a
  previous run's checkpoints and metrics aside (nothing is deleted) and starts from step 0.
  `stop_after` ends the loop early at that step with a checkpoint, as a preemption would; tests
  use it to check that resuming is exact.
  """
  config_checks.check_workdir(workdir)
  lock = run_guards.WorkdirLock(workdir)
  run_guards.process0_decides(lock.acquire)
  try:
    return _train(config, workdir, task=task, restore_fallback=restore_fallback,
                  start_fresh=start_fresh, stop_after=stop_after)
  finally:
    lock.release()


def _train(config, workdir, *, task, restore_fallback, start_fresh, stop_after):
  run = setup(config, task)
  if start_fresh:
    run_guards.process0_decides(lambda: ckpt_lib.set_aside_run(workdir))
  cfg = run.config
  t = cfg.train
  ckpt = ckpt_lib.Checkpointer(workdir, keep=t.keep_checkpoints, async_save=t.async_checkpointing)
  _check_resume(ckpt, workdir, cfg, restore_target(run))
  writer = metrics_lib.MetricWriter(workdir)
  local_batch = t.batch_size // jax.process_count()
  data_iter = run.task.train_data(seed=cfg.seed, process_index=jax.process_index(),
                                  process_count=jax.process_count(), batch_size=local_batch)

  start, state = ckpt.restore_latest(restore_target(run), data_iter, fallback=restore_fallback)
  if state is None:
    state, start = init_state(run), 0
    logging.info("initialised %s parameters",
                 f"{state_lib.count_params(run.abstract_state['params']):,}")
    if t.get("init_from"):
      state = _init_from(run, state, t.init_from)
  else:
    logging.info("resumed from step %d in %s", start, ckpt.directory)

  step_fn = step_lib.make_train_step(
      run.task, run.spec, run.tx, run.lr_schedule, grad_accum_steps=t.grad_accum_steps,
      nonfinite=t.nonfinite, ema_decay=cfg.optimizer.ema_decay, seed=cfg.seed)
  replicated = jax.sharding.NamedSharding(run.mesh, jax.sharding.PartitionSpec())
  # Batches arrive as committed global arrays, so only the outputs' shardings are pinned.
  train_step = jax.jit(step_fn, out_shardings=(run.shardings, replicated), donate_argnums=(0,))

  end = t.num_steps if stop_after is None else min(stop_after, t.num_steps)
  progress = _progress(t, start, end)
  final: dict[str, float] = {}
  last_metrics: dict[str, float] = {}
  tick, tick_step = time.perf_counter(), start
  with _Preemption() as preemption, run.mesh:
    step = start
    while step < end:
      if t.profile_steps and step == t.profile_steps[0]:
        jax.profiler.start_trace(os.path.join(workdir, "profile"))
      batch = run.put_batch(next(data_iter))
      state, metrics = train_step(state, batch)
      step += 1
      if t.profile_steps and step == t.profile_steps[1]:
        jax.block_until_ready(state)
        jax.profiler.stop_trace()
      if progress:
        progress.update(1)
      if step % t.log_every == 0 or step == end:
        metrics = jax.device_get(metrics)
        now = time.perf_counter()
        dt = (now - tick) / max(step - tick_step, 1)
        tick, tick_step = now, step
        last_metrics = {k: float(v) for k, v in metrics.items()}
        writer.write(step, dict(last_metrics, step_time_s=dt, examples_per_s=t.batch_size / dt))
        _health_check(state, cfg, writer, step)
      if t.eval_every and step % t.eval_every == 0 and step != end:
        writer.write(step, evaluate(run, state, step), prefix="eval/")
      stop = preemption.check(step)
      if step % t.checkpoint_every == 0 or step == end or stop:
        _health_check(state, cfg, writer, step)
        ckpt.save(step, state, data_iter, cfg, force=True)
      if stop:
        ckpt.wait()
        logging.warning("preempted: checkpoint of step %d is saved; rerun the same command to "
                        "resume.", step)
        break
  if progress:
    progress.close()
  ckpt.close()
  if step == t.num_steps:
    final = {f"train/{k}": v for k, v in last_metrics.items()}
    final.update({f"eval/{k}": v for k, v in evaluate(run, state, step).items()})
    writer.write(step, {k: v for k, v in final.items() if k.startswith("eval/")})
    if jax.process_index() == 0:
      with open(os.path.join(workdir, "final_metrics.json"), "w") as f:
        json.dump({"step": step, **final}, f, indent=1, sort_keys=True)
  writer.close()
  return final


def _check_resume(ckpt: ckpt_lib.Checkpointer, workdir: str, config, target) -> None:
  """A newest checkpoint written for another model stops the run before anything is restored.

  Damaged files are left to `restore_latest` (and --restore_fallback) to report. Every process
  reads (Orbax's reads synchronise processes); process 0 decides.
  """
  step = ckpt.latest_step()
  if step is None:
    return
  try:
    saved, problems = ckpt.saved_config(step), ckpt.shape_problems(step, target)
  except ckpt_lib.CheckpointError:
    return
  run_guards.process0_decides(lambda: run_guards.check_resume(
      workdir, step, saved, ckpt_lib.config_to_json(config), problems))


def _init_from(run: Run, state: dict, source: str) -> dict:
  """Copies another run's weights into a fresh state (config.train.init_from; fine-tuning).

  The source's own saved config rebuilds its state layout, so any run of the same model restores
  onto this run's mesh; every parameter must match in shape (a clear error lists those that do
  not), which is the contract of e.g. SViT's 224 -> 384 fine-tune (no position table).
  """
  workdir, _, step = source.rpartition(":") if source.rpartition(":")[2].isdigit() else (
      source, "", "")
  step = int(step) if step else None
  src_step, src_config = ckpt_lib.read_config(workdir, step)
  src_run = setup(src_config, check_data=False)
  src = ckpt_lib.Checkpointer(workdir, read_only=True, async_save=False).restore(
      src_step, restore_target(src_run))
  params = src.get("ema_params", src["params"])
  for key, new, old in (("params", params, state["params"]),
                        ("model_state", src["model_state"], state["model_state"])):
    if jax.tree.structure(new) != jax.tree.structure(old):
      raise ValueError(f"config.train.init_from={source!r}: its {key} tree differs from this "
                       "model's; init_from needs the same architecture.")
    bad = [jax.tree_util.keystr(p) for (p, a), b in zip(jax.tree_util.tree_flatten_with_path(new)[0],
                                                        jax.tree.leaves(old)) if a.shape != b.shape]
    if bad:
      raise ValueError(f"config.train.init_from={source!r}: shapes differ for {bad[:10]}.")
  copied = dict(state, params=params, model_state=src["model_state"])
  if "ema_params" in state:
    copied["ema_params"] = params
  logging.info("initialised from %s step %d", workdir, src_step)
  return jax.device_put(copied, run.shardings)


def _progress(t, start: int, end: int):
  if not t.progress_bar or jax.process_index() != 0 or end - start < 2:
    return None
  from tqdm import tqdm
  # disable=None: no bar when stderr is not a terminal (CI logs, nohup), where it is only noise.
  return tqdm(total=end, initial=start, unit="step", mininterval=5.0, dynamic_ncols=True,
              disable=None)


def restore_for_eval(config: ml_collections.ConfigDict, workdir: str, *, step: int | None = None,
                     task: Task | None = None, devices: list | None = None) -> tuple[Run, dict, int]:
  """Restores a checkpoint onto whatever devices are present (any mesh), without data state."""
  run = setup(config, task, devices)
  ckpt = ckpt_lib.Checkpointer(workdir, read_only=True, async_save=False)
  steps = ckpt.all_steps()
  if not steps:
    raise FileNotFoundError(f"no checkpoint in {ckpt.directory}: nothing to evaluate.")
  step = steps[-1] if step is None else step
  if step not in steps:
    raise ValueError(f"checkpoint step {step} not in {ckpt.directory}; available: {steps}.")
  state = ckpt.restore(step, restore_target(run))
  return run, state, step
