r"""A tiny Monet trained on the Python standard library's sources (bytes): the CPU demo.

Command:

  python projects/monet/main.py \
    --config projects/monet/configs/stdlib_demo.py:demo --workdir /tmp/monet_demo
  python -m projects.monet.sample --workdir /tmp/monet_demo --prompt 'def __init__(self'

Variants (comma-separated): demo (default) | tiny (CI smoke run: seconds);
vd (default, vertical decomposition) | hd (horizontal); steps=<int>.

demo: 4 layers, d_model 96, 4 attention heads of 24; Monet experts with E = 32 per sub-router
(32^2 = 1,024 experts per routing group), moe_dim 8, 4 routing heads, k = 4, one router per 2
layers (2 routers); relu2 experts. Data: 'pystdlib_text', byte tokenizer
(0 pad, 1 eos, 2..257 bytes; vocab 258), packed LM sequences of 128 bytes, batch 16. AdamW
2e-3, cosine, 50 warm-up steps, clip 1.0; 500 steps; ambiguity weight 1e-3 (paper), uniformity
weight 0.1 (NOT the paper's 1e-3, see get_config). Hardware: 2 CPU cores. Time: measured only
on a shared VM (load average 10-16 on 2 cores): ~1-2 s/step, 500 steps in ~10 min; uncontended
time not measured. Result of that run: validation CE 2.22 nats/byte (ppl 9.2, from ln 258 =
5.55); routing/selected 3.9 in training (k = 4); utilisation 52% of the 1,024 experts per batch;
usage entropy 2.68 (log 32 = 3.47).

tiny: 2 layers, d_model 32, E = 8, k = 2, sequences of 32, batch 8 (divisible by the 8 forced
CPU devices of the tests), 3 steps: finishes in seconds; numbers are meaningless.
"""
import ml_collections

from common.data.config import text_data_config
from common.train import defaults
from projects.monet import config as config_lib
from common.train import config_variants as variants


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = variants.parse(arg, groups=(("demo", "tiny"), ("vd", "hd")),
                                 keys={"steps": int})
  c = defaults.base_config()
  c.project = "monet"
  c.data = text_data_config("pystdlib_text", tokenizer="bytes", seq_len=128)  # 'lm' format

  m = c.model
  config_lib.add_fields(m)
  m.update(dict(vocab_size=258, hidden_size=96, num_hidden_layers=4, num_attention_heads=4,
                moe_dim=8, moe_heads=4, moe_experts=32, moe_topk=4, moe_groups=2,
                moe_decompose="vertical", hidden_act="relu2", max_position_embeddings=512))
  # The paper's 1e-3 (E = 512, 2M-token batches) let this tiny model's routing collapse: at
  # 1e-3 only 19% of the experts were used by step 50-100; at 0.1, ~50% (measured, 100 steps).
  m.unif_weight = 0.1
  if "hd" in flags:
    m.moe_decompose = "horizontal"

  c.train.update(dict(batch_size=16, num_steps=500, log_every=50, eval_every=0,
                      checkpoint_every=300, keep_checkpoints=2))
  c.optimizer.update(dict(name="adamw", learning_rate=2e-3, schedule="cosine", warmup_steps=50,
                          end_lr_fraction=0.1, weight_decay=0.0, grad_clip_norm=1.0))
  c.eval.update(dict(batch_size=32, splits=("validation",), max_batches=20))
  c.eval.evaluators = ("loss",)

  if "tiny" in flags:
    c.data.seq_len = 32
    m.update(dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, moe_dim=4,
                  moe_heads=2, moe_experts=8, moe_topk=2, max_position_embeddings=64))
    defaults.smoke_run(c, batch_size=8, num_steps=3, eval_batch_size=8, eval_max_batches=2)
  if "steps" in values:
    variants.set_steps(c, values["steps"])
    c.train.checkpoint_every = min(c.train.checkpoint_every, values["steps"])
  return c
