"""The trainer's config fields, with defaults. Project configs start from `base_config()`.

Every field the trainer reads is declared here, so a typo in a config file or on the command
line (`--config.train.num_step=...`) is an error, not a silently ignored value
(`common.train.config_checks` validates types and values before anything is compiled).
"""
import ml_collections


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.project = ""            # projects/<project>/task.py supplies the model and loss
  c.seed = 0

  c.mesh = ml_collections.ConfigDict()
  # Axis name -> size; -1 fills with the remaining devices. Product must equal the device count.
  c.mesh.shape = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "model": 1, "expert": 1})
  # Logical parameter/activation axis -> mesh axes (None = replicated). Later rules do not override
  # earlier ones; a logical name missing here is replicated.
  c.mesh.rules = (
      ("batch", ("data", "fsdp")),
      ("embed", "fsdp"),
      ("mlp", "model"),
      ("heads", "model"),
      ("kv", None),
      ("vocab", "model"),
      ("expert", "expert"),
  )

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64          # global, over all processes and micro-batches
  c.train.num_steps = 1000
  c.train.grad_accum_steps = 1     # micro-batches per step; batch_size must divide
  c.train.log_every = 50
  c.train.eval_every = 0           # 0: evaluate only at the end
  c.train.checkpoint_every = 500
  c.train.keep_checkpoints = 3
  c.train.async_checkpointing = True
  c.train.nonfinite = "stop"       # "stop" | "skip": what to do with a non-finite loss/gradient
  c.train.profile_steps = ()       # e.g. (10, 12): capture a profiler trace of steps [10, 12)
  c.train.progress_bar = True
  # Start a new run from another run's weights (fine-tuning): a workdir with checkpoints, or
  # 'WORKDIR:STEP'. Parameters (the EMA ones if that run kept them) and non-parameter model state
  # are copied; optimiser state and step start fresh. Ignored when this run resumes itself.
  c.train.init_from = ""

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adamw"       # adamw | adafactor | sgd
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = "cosine"  # cosine | rsqrt | linear | constant (all after linear warm-up)
  c.optimizer.warmup_steps = 0
  c.optimizer.end_lr_fraction = 0.0
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8
  c.optimizer.momentum = 0.9       # sgd only
  c.optimizer.weight_decay = 0.0
  c.optimizer.weight_decay_schedule = "constant"  # constant | cosine (weight_decay -> final_weight_decay)
  c.optimizer.final_weight_decay = 0.0
  c.optimizer.warmup_init_lr = 0.0  # the linear warm-up starts here (I-JEPA: 2e-4)
  c.optimizer.weight_decay_mask = "no_bias_norm"  # all | no_bias_norm | none
  c.optimizer.grad_clip_norm = 0.0  # 0: off
  # Per-group learning rates: ((regex on the parameter path, multiplier), ...); the first match
  # scales that parameter's update (lr and decoupled decay), unmatched ones keep 1. SEA's official
  # groups: (('(^|/)sea/', 10.0), ('.*', 0.2)). Paths look like 'layers/0/attn/sea/gates/kernel'.
  c.optimizer.lr_multipliers = ()
  c.optimizer.ema_decay = 0.0      # 0: no EMA of parameters; else evaluate the EMA too

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 128
  c.eval.splits = ("test",)
  c.eval.max_batches = 0           # 0: the whole split

  c.data = ml_collections.ConfigDict()  # filled by the project config; read by common.data
  c.model = ml_collections.ConfigDict()  # filled by the project config; read by the project
  c.model.dtype = "float32"        # compute dtype: float32 | bfloat16 (parameters stay float32)
  c.model.param_dtype = "float32"
  c.model.remat_policy = "none"    # none | full | dots_saveable | dots_with_no_batch_dims_saveable | ...
  return c


def smoke_run(c: ml_collections.ConfigDict, *, batch_size: int, num_steps: int,
              eval_batch_size: int, eval_max_batches: int, log_every: int = 1,
              checkpoint_every: int | None = None, **train) -> None:
  """Turns `c` into a seconds-long CI run (the configs' 'tiny' variants).

  `num_steps` steps of `batch_size`, a log line every `log_every` steps, a checkpoint every
  `checkpoint_every` (default: at the last step), no periodic evaluation (the final one runs on
  `eval_max_batches` batches of `eval_batch_size`), a one-step warm-up and no progress bar.
  `train` sets further `c.train` fields.
  """
  c.train.update(dict(batch_size=batch_size, num_steps=num_steps, log_every=log_every,
                      eval_every=0, checkpoint_every=checkpoint_every or num_steps,
                      progress_bar=False, **train))
  c.optimizer.warmup_steps = 1
  c.eval.update(dict(batch_size=eval_batch_size, max_batches=eval_max_batches))
