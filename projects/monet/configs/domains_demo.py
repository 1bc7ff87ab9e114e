r"""A tiny Monet (or its dense baseline) on code, prose and chess: the CPU domain-purging demo.

Command:

  python projects/monet/main.py \
    --config projects/monet/configs/domains_demo.py:demo,seed=1 --workdir /tmp/monet_domains

Variants (comma-separated): demo (default) | tiny (CI smoke run: seconds); vd (default,
vertical decomposition) | hd (horizontal) | dense (the baseline of equal parameters, no routers:
MonetConfig.dense_width); experts=<E per sub-router>; seed=<int>; steps=<int>.

Data: 'text_domains' (common/data/builders/text_domains: ~200 kB each of stdlib Python
sources, the pydoc language-reference prose and Stockfish games), bytes (0 pad, 1 eos,
2..257 bytes; vocab 258), packed LM sequences of 128 bytes, batch 16.
demo: 2 layers, d_model 64, 4 attention heads of 16; Monet experts with E = 32 per sub-router
(1,024 experts), moe_dim 8, 4 routing heads, k = 4, one router for both layers; relu2 experts.
AdamW 2e-3, cosine, 30 warm-up steps, clip 1.0; 400 steps. Uniformity and ambiguity weights
1e-3 each, the paper's (projects/monet/losses.py).
tiny: 1 layer, d_model 32, E = 8, k = 2, sequences of 32, batch 8, 3 steps: seconds; numbers
are meaningless.
"""
import ml_collections

from common.data.config import text_data_config
from common.train import config_variants as variants
from common.train import defaults
from projects.monet import config as config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = variants.parse(arg, groups=(("demo", "tiny"), ("vd", "hd", "dense")),
                                 keys={"steps": int, "seed": int, "experts": int})
  c = defaults.base_config()
  c.project = "monet"
  c.seed = values.get("seed", 0)
  c.data = text_data_config("text_domains", tokenizer="bytes", seq_len=128)

  m = c.model
  config_lib.add_fields(m)
  decompose = {"hd": "horizontal", "dense": "dense"}.get(
      next((f for f in ("hd", "dense") if f in flags), ""), "vertical")
  m.update(dict(vocab_size=258, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                moe_dim=8, moe_heads=4, moe_experts=values.get("experts", 32), moe_topk=4,
                moe_groups=2, moe_decompose=decompose, hidden_act="relu2",
                max_position_embeddings=256))
  m.unif_weight = m.amb_weight = 1e-3   # the paper's

  c.train.update(dict(batch_size=16, num_steps=400, log_every=50, eval_every=0,
                      checkpoint_every=400, keep_checkpoints=1))
  c.optimizer.update(dict(name="adamw", learning_rate=2e-3, schedule="cosine", warmup_steps=30,
                          end_lr_fraction=0.1, weight_decay=0.0, grad_clip_norm=1.0))
  c.eval.update(dict(batch_size=32, splits=("validation",), max_batches=20))
  c.eval.evaluators = ("loss",)

  if "tiny" in flags:
    c.data.seq_len = 32
    m.update(dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, moe_dim=4,
                  moe_heads=2, moe_experts=values.get("experts", 8), moe_topk=2, moe_groups=1,
                  max_position_embeddings=64))
    defaults.smoke_run(c, batch_size=8, num_steps=3, eval_batch_size=8, eval_max_batches=2)
  if "steps" in values:
    variants.set_steps(c, values["steps"])
    c.train.checkpoint_every = min(c.train.checkpoint_every, values["steps"])
  return c
