r"""Long-range associative recall at n = 2048: any registered attention in one small LM (CPU demo).

Command (the routing demo, projects/routing_transformer/demo.py, runs every mixer this way):

  python -m common.tasks.mixer_lm \
    --config projects/routing_transformer/configs/recall.py:demo,mixer=routing --workdir /tmp/rc

Variants (comma-separated): demo (default) | tiny (CI: seconds); mixer=<name> (a name from
common.layers.mixers: dense, local, routing, sea, performer, region; or a name of VARIANTS:
routing_lucidrains; default routing); steps=<int>; seed=<int>.

Task (common.data.recall): 2048 tokens, 32 keys with 8 values each stored once per sequence
among 16 filler tokens; a quarter of the keys are queried 2..64 tokens after their store, the
rest 512 or more tokens after it. Only the answers are scored, so chance is ln 8 = 2.08 nats
(the answers' unigram entropy) and a model that finds the store reaches 0.

Model (config.project 'mixer_lm', common/tasks/mixer_lm.py): 1 layer, width 64, 2 heads of 32,
GELU MLP 256, no positions; only the mixer changes. Every sparse mixer reads at most 256 keys
per query (local: a 256-token window, 64-token blocks; routing: one local head with 128-blocks
and a 128 flange, one routing head with K = 8 clusters of 256, k-means EMA decay 0.9 (the
official 0.999 averages over ~1,000 steps, the length of a whole recall_long run: at 200 steps
it left 5% of the far queries in a window with their store, 0.9 left 85%; README); region: 4
regions of 64; SEA: k = 256 (the per-row budget in key units)), against up to 2048 for dense.
AdamW 3e-3, cosine, warm-up 20, batch 4, 200 steps; validation on the 256 fixed sequences
(8,192 answers). Hardware: 2 CPU cores. Result: README ("Results of the main job").

tiny: n = 256, width 32, 4 keys, far_min 128, local window 64 / blocks 32, routing clusters of
64, batch 8, 3 steps.
"""
import ml_collections

from common.data.config import recall_data_config
from common import config_contract
from common.tasks import mixer_lm
from common.train import config_variants, defaults

# Each mixer's options at the demo's key budget (256 keys per query at n = 2048).
DEMO_OPTIONS = {
    "dense": {},
    "local": {"window": 256, "block": 64},
    "routing": {"window": 256, "query_block": 128, "memory_flange": 128, "kmeans_decay": 0.9},
    "region": {"region": 64, "top_regions": 4},
    "sea": {"k": 256, "predictor_length": 128},
    "performer": {},
}
# Rows that run a registered mixer with options added to its own: the routing heads with
# lucidrains' numerics instead of the official TF ones (projects/routing_transformer/mixers.py).
VARIANTS = {"routing_lucidrains": ("routing", {"mask_self": True, "scale_logits": True})}
TINY_OPTIONS = {
    "dense": {},
    "local": {"window": 64, "block": 32},
    "routing": {"window": 64, "query_block": 32, "memory_flange": 32, "kmeans_decay": 0.9},
    "region": {"region": 16, "top_regions": 2},
    "sea": {"k": 32, "predictor_length": 32},
    "performer": {},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = config_variants.parse(arg, groups=(("demo", "tiny"),),
                                        keys={"mixer": str, "steps": int, "seed": int})
  tiny = "tiny" in flags
  name = values.get("mixer", "routing")
  mixer, extra = VARIANTS.get(name, (name, {}))
  c = defaults.base_config()
  c.project = "mixer_lm"
  c.seed = values.get("seed", 0)
  c.data = recall_data_config(seq_len=2048, num_keys=32, num_values=8, num_fillers=16,
                              near_max=64, far_min=512, near_fraction=0.25, eval_examples=256)
  config_contract.write_fields(c.model, mixer_lm.MixerLMConfig())
  options = dict((TINY_OPTIONS if tiny else DEMO_OPTIONS).get(mixer, {}), **extra)
  c.model.update(dict(mixer=mixer, mixer_options=ml_collections.ConfigDict(options), hidden=64,
                      num_layers=1, num_heads=2, mlp_ratio=4))
  c.train.update(dict(batch_size=4, num_steps=200, log_every=25, eval_every=0,
                      checkpoint_every=200, keep_checkpoints=1))
  c.optimizer.update(dict(name="adamw", learning_rate=3e-3, schedule="cosine", warmup_steps=20,
                          weight_decay=0.01, grad_clip_norm=1.0))
  c.eval.update(dict(batch_size=8, splits=("validation",), evaluators=("loss", "recall")))
  if tiny:
    c.data.update(dict(seq_len=256, num_keys=4, far_min=128, near_max=16, eval_examples=16))
    c.model.hidden = 32
    c.train.update(dict(batch_size=8, num_steps=3, log_every=1, checkpoint_every=3,
                        async_checkpointing=False, progress_bar=False))
    c.optimizer.warmup_steps = 1
    c.eval.batch_size = 8
  if "steps" in values:
    c.train.num_steps = c.train.checkpoint_every = values["steps"]
  return c
