r"""The official Routing Transformer hparam sets (TF sparse_transformer.py; spec §1.5).

Command (a TPU/GPU slice; data prepared as TFDS array_record first):

  python projects/routing_transformer/main.py \
    --config projects/routing_transformer/configs/paper.py:wikitext103_4k --workdir DIR

Variants: wikitext103_4k (default) | wikitext103_1k | pg19_8k | enwik8_8k | imagenet64 | cifar10;
override steps=<int>.

Expected results (paper abstract; which set gave which number is inferred from names, [U]):
WT103 15.8 test perplexity (wikitext103_4k), PG-19 33.2 test perplexity (pg19_8k, 22 layers),
ImageNet-64 3.43 bits/dim (imagenet64). Hardware and time: to be measured (the paper used TPUs).

Data (by TFDS name, `config.data.manual_dir` for manual downloads):
  pg19        'tfds:pg19' (TFDS catalog; text feature 'book_text').
  wikitext103 'tfds:wikitext103' and enwik8 'tfds:enwik8': no TFDS catalog builder is known to
              us [U]; register one (array_record) or point data_dir at a prepared copy.
  Tokenizer: official runs used T2T SubwordTextEncoder vocabularies (PG-19:
  vocab.pg19_length8k.32768.subwords); here 'sentencepiece:32768' trained on the train split
  (not the official vocabulary, so perplexities are not directly comparable); enwik8: bytes.
  imagenet64  'tfds:downsampled_imagenet/64x64' (train / validation; 64x64x3, n = 12288);
  cifar10     'tfds:cifar10' (train / test; 32x32x3, n = 3072). Read by the common image
              pipeline with mean 0, std 1 and no augmentation, so the task gets uint8 / 255 back
              and recovers exact intensities (task.py: raster order row, column, channel; inputs
              = the targets shifted right by one with a 0 in front; vocabulary 256; metric
              bits/dim). Model as `sparse_image_transformer.py`: per-channel pixel embeddings
              [256 * 3, hidden] * sqrt(hidden) and learned n-d (row, column) positional
              embeddings (input_embedding.PixelEmbedding), no relative positions, no emb_dense,
              relu FFN, residual dropout 0.3, unconditional. downsampled_imagenet has no labels:
              label_key='' (the pipeline then reads none).

Optimiser (sparse_transformer_local): Adafactor (beta1 0, decay 'pow' 0.8, clipping 1.0,
parameter scale) = optax.adafactor defaults via optimizer.name='adafactor'; lr 0.01 with
`constant*rsqrt_normalized_decay`, warm-up 10k. Differences to T2T that remain: the trainer's
'rsqrt' ramps linearly over the warm-up where T2T holds 0.01 constant, and T2T's weight_decay is
an L2 term in the loss where optax's adafactor decays weights in the update.

Fields of `config.model`: projects/routing_transformer/config.py (the dataclass and its presets).
"""
import math

import ml_collections

from common.data import config as data_config
from common.train import defaults
from common.train import config_variants
from projects.routing_transformer import config as config_lib

_DATA = {
    "wikitext103_4k": dict(name="tfds:wikitext103", tokenizer="sentencepiece:32768"),
    "wikitext103_1k": dict(name="tfds:wikitext103", tokenizer="sentencepiece:32768"),
    "pg19_8k": dict(name="tfds:pg19", tokenizer="sentencepiece:32768", text_key="book_text"),
    "enwik8_8k": dict(name="tfds:enwik8", tokenizer="bytes"),
}
_VOCAB = {"sentencepiece:32768": 32768, "bytes": 258}
# The official sets' sequence lengths and weight decays (not model fields).
_SEQ_LEN = {"wikitext103_4k": 4096, "wikitext103_1k": 1024, "pg19_8k": 8192, "enwik8_8k": 8192,
            "imagenet64": 64 * 64 * 3, "cifar10": 32 * 32 * 3}
_WEIGHT_DECAY = {"wikitext103_4k": 2e-5, "wikitext103_1k": 2e-5}
_IMAGE_DATA = {"imagenet64": "tfds:downsampled_imagenet/64x64", "cifar10": "tfds:cifar10"}
_IMAGE_EVAL_SPLIT = {"imagenet64": "validation", "cifar10": "test"}
# Unconditional pixel LMs never read labels; downsampled_imagenet has none.
_IMAGE_LABEL_KEY = {"imagenet64": "", "cifar10": "label"}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = config_variants.parse(arg, groups=(tuple(config_lib.PRESETS),),
                                        keys={"steps": int})
  (name,) = flags
  c = defaults.base_config()
  c.project = "routing_transformer"
  seq_len, weight_decay = _SEQ_LEN[name], _WEIGHT_DECAY.get(name, 0.0)
  c.model.update(config_lib.model_fields(config_lib.PRESETS[name]))
  if name in config_lib.IMAGE_PRESETS:
    c.data = data_config.image_data_config(
        _IMAGE_DATA[name], kind="image", channels=3, mean=(0.0,), std=(1.0,), augment=(),
        eval_split=_IMAGE_EVAL_SPLIT[name], label_key=_IMAGE_LABEL_KEY[name], num_workers=16)
    assert math.prod(c.model.image_shape) == seq_len
    eval_split = c.data.eval_split
  else:
    c.data = data_config.text_data_config(
        eval_split="validation", seq_len=seq_len, num_workers=16, **_DATA[name])
    c.model.vocab_size = _VOCAB[c.data.tokenizer]
    eval_split = "validation"
  c.model.dtype = "bfloat16"

  c.train.update(dict(batch_size=8, num_steps=500_000, log_every=100, eval_every=10_000,
                      checkpoint_every=5_000, progress_bar=False))
  c.optimizer.update(dict(name="adafactor", learning_rate=0.01, schedule="rsqrt",
                          warmup_steps=10_000, weight_decay=weight_decay, grad_clip_norm=0.0,
                          weight_decay_mask="all"))
  c.eval.update(dict(batch_size=8, splits=(eval_split,), max_batches=0))
  if "steps" in values:
    config_variants.set_steps(c, values["steps"])
  return c
