r"""Byte-level Routing Transformer on the Python standard library's sources (CPU demo).

Command:

  python projects/routing_transformer/main.py \
    --config projects/routing_transformer/configs/stdlib_demo.py:demo,routing --workdir /tmp/rt

Variants (comma-separated): demo (default) | tiny (CI: seconds);
routing (default: 2 local + 2 routing heads) | local_only (4 local heads) | dense (4 heads of
full causal attention: one local block spanning the sequence); overrides steps=<int>.

demo: 2 layers, width 128 (emb 128), GEGLU 256, 4 heads of 32, n = 2048 bytes, K = 8 clusters of
w = 256, local blocks of 128 with a 128 flange, Shaw relative positions up to 128, Adafactor with
the official schedule shape (lr 0.01, rsqrt, warm-up 20), batch 2, 200 steps. Hardware: 2 CPU
cores. Time: a 4-layer batch-4 version of this took 6.6 s (routing), 6.9 s (local_only) and
31 s (dense: the [n, n] Shaw terms dominate) per train step on a 2-core VM shared with a load
average of ~12, so expect minutes per variant on an idle machine; end-to-end time and result: to
be measured (demo.py compares the three variants at equal steps on validation bits/byte; the
paper's ordering on long runs is routing better than local).

tiny: seq_len 64, 2 layers of width 32, 2 + 2 heads of 8, K = 4, w = 16, batch 8 (a multiple of
the 8 CPU devices the test suite forces), 3 steps.
Field meanings: configs/paper.py.
"""
import ml_collections

from common.data import config as data_config
from common.train import defaults
from common.train import config_variants
from projects.routing_transformer import hparams


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = config_variants.parse(
      arg, groups=(("demo", "tiny"), ("routing", "local_only", "dense")), keys={"steps": int})
  c = defaults.base_config()
  c.project = "routing_transformer"
  c.data = data_config.text_data_config("pystdlib_text", tokenizer="bytes", seq_len=2048,
                                        eval_split="validation", num_workers=0)
  m = c.model
  m.update(hparams.defaults())
  m.update(dict(vocab_size=258, embedding_dims=128, hidden_size=128, num_layers=2,
                filter_size=256, num_local_heads=2, num_routing_heads=2, num_clusters=8,
                window=256, query_block=128, memory_flange=128, max_relative_position=128,
                residual_dropout=0.0))
  c.train.update(dict(batch_size=2, num_steps=200, log_every=25, eval_every=0,
                      checkpoint_every=200))
  c.optimizer.update(dict(name="adafactor", learning_rate=0.01, schedule="rsqrt",
                          warmup_steps=20, weight_decay=0.0, grad_clip_norm=0.0))
  c.eval.update(dict(batch_size=2, splits=("validation",), max_batches=16))

  if "tiny" in flags:
    c.data.seq_len = 64
    m.update(dict(embedding_dims=16, hidden_size=32, num_layers=2, filter_size=64,
                  num_clusters=4, window=16, query_block=16, memory_flange=16,
                  max_relative_position=16))
    c.train.update(dict(batch_size=8, num_steps=3, log_every=1, checkpoint_every=3,
                        async_checkpointing=False, progress_bar=False))
    c.optimizer.warmup_steps = 1
    c.eval.update(dict(batch_size=8, max_batches=1))

  heads = m.num_local_heads + m.num_routing_heads
  if "local_only" in flags:
    m.update(dict(num_local_heads=heads, num_routing_heads=0))
  elif "dense" in flags:
    m.update(dict(num_local_heads=heads, num_routing_heads=0, query_block=c.data.seq_len,
                  memory_flange=0))
  if "steps" in values:
    c.train.num_steps = values["steps"]
    c.train.checkpoint_every = values["steps"]
    c.optimizer.warmup_steps = min(c.optimizer.warmup_steps, max(values["steps"] // 10, 1))
  return c
