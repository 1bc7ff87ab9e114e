r"""Byte-level Routing Transformer on the Python standard library's sources (CPU demo).

Command (the README's main-job demo runs all three attention variants this way):

  python projects/routing_transformer/main.py \
    --config projects/routing_transformer/configs/stdlib_demo.py:demo,routing,sinusoidal \
    --workdir /tmp/rt

Variants (comma-separated, one per group):
  demo (default) | tiny (CI: seconds) | colab (a Colab GPU/TPU runtime: Wikitext-103, below)
  routing (default: 2 local + 2 routing heads) | local_only (4 local heads) | dense (4 heads of
      full causal attention, as local heads whose look-back spans the whole sequence:
      query_block 128 with memory_flange = seq_len - 128, so the kernel skips the blocks above
      the diagonal)
  relative (default: Shaw relative positions as the official text sets, inside
      common.kernels.block_sparse_attention) | sinusoidal (NOT the official text setting: no
      relative positions, a T2T sinusoidal timing signal added after emb_dense instead; this
      is what demo.py uses, because when it was set up the relative terms ran on the windowed
      jnp path and made the dense baseline ~30 s/step on 2 CPU cores)
  steps=<int> overrides the number of steps.

demo: 2 layers, width 128 (emb 128), GEGLU 256, 4 heads of 32, n = 2048 bytes, K = 8 clusters of
w = 256, local blocks of 128 with a 128 flange, Adafactor with the official schedule shape
(lr 0.01, rsqrt, warm-up 20), batch 2, 150 steps; validation on 16 batches of 2 x 2048 bytes.
Hardware: 2 CPU cores. Time per train step with 'sinusoidal' (measured on an idle 2-core VM,
jit step incl. Adafactor): routing 0.75 s, local_only 0.40 s, dense 1.5 s, so the three-way
demo needs ~8 minutes on an idle machine (estimated from those; one measured run on a VM shared
at load average 8-10 took 22.5 min wall, 373 s user CPU). With 'relative' on the windowed jnp
path (before the kernel took the Shaw terms) the dense step took ~30 s (a 4-layer batch-4 version).
Result: see README.md ("Stdlib text by repeat distance": evaluated by the 'loss' and
'repeat_distance' evaluators, the latter bucketing the loss by how far back each byte's 8-gram
last occurred).

tiny: seq_len 64, 2 layers of width 32, 2 + 2 heads of 8, K = 4, w = 16, batch 8 (a multiple of
the 8 CPU devices the test suite forces), 3 steps.

colab: the same experiment bigger, for colab.ipynb on a Colab GPU or TPU runtime. Data: Wikitext-103
(raw) bytes, 'tfds:wikitext103' with `data.prepare=True` (the one variant that downloads: the
builder in common/data/builders/wikitext103 fetches Salesforce/wikitext from the HF
hub on first use, ~300 MB, and writes array_record). Still bytes (vocab 258), so the metric is
bits/byte, not the paper's word-level perplexity. Model: 6 layers, width 512 (emb 512), GEGLU
2048, 4 local + 4 routing heads of 64, n = 2048, K = 8 clusters of w = 256, local blocks of 256
with a 256 flange; batch 8, 3000 steps (Adafactor as demo, warm-up 300); validation on 32 batches.
Time: NOT measured (no accelerator here). Estimate: ~5 min to download and build the data, then
~0.2-0.5 s/step on an A100 or a TPU v5e/v2-8 (~10-25 min for 3000 steps), ~1-2 s/step on a T4
(pass steps=1500 to stay near an hour).
Field meanings: projects/routing_transformer/config.py.
"""
import ml_collections

from common.data import config as data_config
from common.train import defaults
from common.train import config_variants
from projects.routing_transformer import config as config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = config_variants.parse(
      arg, groups=(("demo", "tiny", "colab"), ("routing", "local_only", "dense"),
                   ("relative", "sinusoidal")), keys={"steps": int})
  c = defaults.base_config()
  c.project = "routing_transformer"
  c.data = data_config.text_data_config("pystdlib_text", tokenizer="bytes", seq_len=2048,
                                        eval_split="validation", num_workers=0)
  m = c.model
  m.update(config_lib.model_fields())
  m.update(dict(vocab_size=258, embedding_dims=128, hidden_size=128, num_layers=2,
                filter_size=256, num_local_heads=2, num_routing_heads=2, num_clusters=8,
                window=256, query_block=128, memory_flange=128, max_relative_position=128,
                residual_dropout=0.0))
  c.train.update(dict(batch_size=2, num_steps=150, log_every=25, eval_every=0,
                      checkpoint_every=150))
  c.optimizer.update(dict(name="adafactor", learning_rate=0.01, schedule="rsqrt",
                          warmup_steps=20, weight_decay=0.0, grad_clip_norm=0.0))
  # repeat_distance: the loss by how far back each byte's 8-gram last occurred (within a local
  # block's reach of 128 + 128 flange, or beyond; common/eval/recall.py).
  c.eval.update(dict(batch_size=2, splits=("validation",), max_batches=16,
                     evaluators=("loss", "repeat_distance"), repeat_k=8,
                     repeat_edges=(128, 256, 1024)))

  if "tiny" in flags:
    c.data.seq_len = 64
    m.update(dict(embedding_dims=16, hidden_size=32, num_layers=2, filter_size=64,
                  num_clusters=4, window=16, query_block=16, memory_flange=16,
                  max_relative_position=16))
    c.train.update(dict(batch_size=8, num_steps=3, log_every=1, checkpoint_every=3,
                        async_checkpointing=False, progress_bar=False))
    c.optimizer.warmup_steps = 1
    c.eval.update(dict(batch_size=8, max_batches=1))

  if "colab" in flags:
    # Registers the TFDS builder 'wikitext103' (nothing is downloaded until data is first read).
    from common.data.builders.wikitext103 import wikitext103  # pylint: disable=g-import-not-at-top,unused-import
    c.data = data_config.text_data_config("tfds:wikitext103", tokenizer="bytes", seq_len=2048,
                                          eval_split="validation", prepare=True, num_workers=0)
    m.update(dict(embedding_dims=512, hidden_size=512, num_layers=6, filter_size=2048,
                  num_local_heads=4, num_routing_heads=4, num_clusters=8, window=256,
                  query_block=256, memory_flange=256, max_relative_position=256))
    c.train.update(dict(batch_size=8, num_steps=3000, log_every=100, checkpoint_every=1000))
    c.optimizer.warmup_steps = 300
    c.eval.update(dict(batch_size=8, max_batches=32))

  if "sinusoidal" in flags:
    # No Shaw terms: every head then runs common.kernels.block_sparse_attention ('auto').
    m.update(dict(local_relative=False, routing_relative=False, max_relative_position=0,
                  positions="sinusoidal"))
  heads = m.num_local_heads + m.num_routing_heads
  if "local_only" in flags:
    m.update(dict(num_local_heads=heads, num_routing_heads=0))
  elif "dense" in flags:
    m.update(dict(num_local_heads=heads, num_routing_heads=0,
                  memory_flange=c.data.seq_len - m.query_block))
  if "steps" in values:
    c.train.num_steps = values["steps"]
    c.train.checkpoint_every = values["steps"]
    c.optimizer.warmup_steps = min(c.optimizer.warmup_steps, max(values["steps"] // 10, 1))
  return c
