r"""A tiny pixel LM: the imagenet64 / cifar10 model body on 'digits' resized to 4x4 RGB (CPU).

Command:

  python projects/routing_transformer/main.py \
    --config projects/routing_transformer/configs/pixel_demo.py --workdir /tmp/rt_pixels

What it is for: exercising the pixel-LM path of the paper presets (configs/paper.py:imagenet64,
cifar10) in seconds: the common image pipeline with mean 0 / std 1 and no augmentation, exact
intensities back in the task, raster order (row, column, channel) of length 4*4*3 = 48, per-channel
pixel embeddings and learned n-d positions, relu FFN, no relative positions (so every head runs
common.kernels.block_sparse_attention). 8x8 grey digits resized to 4x4 and copied to 3 channels
are not a benchmark; the metric is validation bits/dim.

Model: 2 layers of width 32, 2 local + 2 routing heads of 8, K = 3 clusters of w = 16, local
blocks of 16 with a 16 flange, vocabulary 256. Batch 8 (a multiple of the 8 CPU devices the test
suite forces), 3 steps by default; override steps=<int>. Time: seconds on 2 CPU cores.
"""
import ml_collections

from common.data import config as data_config
from common.train import config_variants, defaults
from projects.routing_transformer import config as config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  _, values = config_variants.parse(arg, groups=(), keys={"steps": int})
  c = defaults.base_config()
  c.project = "routing_transformer"
  c.data = data_config.image_data_config("digits", image_size=4, channels=3, mean=(0.0,),
                                         std=(1.0,), augment=(), num_workers=0)
  m = c.model
  m.update(config_lib.model_fields())
  m.update(dict(vocab_size=256, embedding_dims=32, hidden_size=32, num_layers=2,
                filter_size=64, ffn="relu", num_local_heads=2, num_routing_heads=2,
                num_clusters=3, window=16, query_block=16, memory_flange=16,
                local_relative=False, routing_relative=False, max_relative_position=0,
                residual_dropout=0.0, positions="learned_nd", image_shape=(4, 4, 3)))
  c.train.update(dict(batch_size=8, num_steps=3, log_every=1, eval_every=0, checkpoint_every=3,
                      async_checkpointing=False, progress_bar=False))
  c.optimizer.update(dict(name="adafactor", learning_rate=0.01, schedule="rsqrt",
                          warmup_steps=1, weight_decay=0.0, grad_clip_norm=0.0))
  c.eval.update(dict(batch_size=8, splits=("test",), max_batches=2))
  if "steps" in values:
    config_variants.set_steps(c, values["steps"])
    c.train.checkpoint_every = values["steps"]
  return c
