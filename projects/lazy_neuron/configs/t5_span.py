r"""T5 encoder-decoder with ReLU MLPs trained by span corruption: activation sparsity in NLP.

Command (CPU demo):

  python projects/lazy_neuron/main.py \
    --config projects/lazy_neuron/configs/t5_span.py:demo --workdir /tmp/ln_t5

Variants (comma-separated): demo (default) | base (T5-Base on C4) | tiny (CI smoke run);
relu (default, dense) | topk (ReLU + top-k, k = d_ff // 48); overrides k=<int>, steps=<int>.

demo: a 2+2-layer T5 (d_model 128, d_ff 512) on 'pystdlib_text' with the byte tokenizer
(0 pad, 1 eos, 2..257 bytes, 100 sentinels 258..357; vocab_size 384 covers them and is a
multiple of 128), span corruption with 128 input tokens (targets ~30, computed by the data
layer as T5 does). Hardware: 2 CPU cores. One jitted train step (batch 32) took 220-350 ms
dense and ~+15 % with top-k on a shared 2-core VM, so 500 steps take ~2-3 minutes; end-to-end
time and result: to be measured. Expected: token accuracy on the corrupted spans rising well
above the unigram baseline within a few hundred steps; dense ReLU 'act_nonzero/mean' falling
during training, encoder and decoder alike, with the first layer the densest (the paper's
per-layer picture, third-party reading; paper_facts.md §1.2).

base: T5-Base (d_model 768, d_ff 3072, 12+12 layers, 12 heads of 64, vocab 32128 = T5's 32000
SentencePiece pieces + 100 sentinels, padded) on C4 ('tfds:c4/en:3.1.0', T5's
SentencePiece model from gs://t5-data, reachable from a TPU VM), inputs 512 / targets 114,
batch 128, 2^19 = 524,288 steps (the T5 paper's pre-training length for its baseline), Adafactor
with T5's inverse-square-root schedule (lr 0.01 for 10k steps, then 0.01 * sqrt(10k / step)),
dropout 0.1 (T5 v1.0; v1.1 turned it off for pre-training), z-loss 1e-4 (T5X). Hardware: a TPU
v3-32 / v4-16 class slice, data parallel. Time: to be measured. Expected: dense ReLU
'act_nonzero/mean' near the paper's 3.0 % for T5-Base (abstract; their exact recipe is not
confirmed). The trainer's 'rsqrt' schedule warms up linearly over warmup_steps where T5 holds
the lr constant: to be reconciled with common.train.

Choice of k: k = d_ff // 48 (64 of 3072, 2.1 %; 10 of 512 in the demo): below T5-Base's natural
3.0 %, i.e. "an even sparser activation via top-k". The paper's T5 k is NOT confirmed.

Fields of `config.model`: `T5Config` in projects/lazy_neuron/config.py (its docstring lists
them; an unknown field is an error).
Extra `config.eval` fields: evaluators (loss | sparsity for T5), split_for_train_stats
(training split for 'sparsity'; '' to skip).
"""
import ml_collections

from common.train import defaults
from common.train import config_variants
from projects.lazy_neuron import config as config_lib

TOPK_DIVISOR = 48  # k = d_ff // 48, see the module docstring
# T5's SentencePiece model (32,000 pieces; the data layer adds 100 sentinels on top).
T5_SPM = "gs://t5-data/vocabs/cc_all.32000/sentencepiece.model"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = config_variants.parse(
      arg, groups=(("demo", "base", "tiny"), ("relu", "topk")),
      keys={"k": int, "steps": int})
  c = defaults.base_config()
  c.project = "lazy_neuron"

  c.data = ml_collections.ConfigDict(dict(
      name="pystdlib_text", train_split="train", eval_split="validation", tokenizer="bytes",
      task_format="span_corruption", inputs_length=128,
      targets_length=0,  # 0: computed from inputs_length as T5 does (noise 0.15, spans of 3)
      seq_len=128,       # read by task_format='lm' only
      num_workers=0))

  m = c.model
  config_lib.set_fields(m, "T5-Base" if "base" in flags else config_lib.T5Config(
      vocab_size=384, d_model=128, d_ff=512, num_heads=4, head_dim=32, num_encoder_layers=2,
      num_decoder_layers=2, mlp_activation="relu", top_k=0, topk_mode="threshold",
      dropout_rate=0.0, relative_buckets=32, relative_max_distance=128, tie_embeddings=True,
      z_loss=1e-4))

  c.train.update(dict(batch_size=32, num_steps=500, log_every=50, eval_every=250,
                      checkpoint_every=250))
  o = c.optimizer
  o.update(dict(name="adamw", learning_rate=2e-3, schedule="cosine", warmup_steps=50,
                weight_decay=0.0, grad_clip_norm=1.0))
  e = c.eval
  e.update(dict(batch_size=64, splits=("validation",), max_batches=20))
  e.evaluators = ("loss", "sparsity")
  e.split_for_train_stats = "train"

  if "base" in flags:
    c.data.update(dict(name="tfds:c4/en:3.1.0", tokenizer=f"sentencepiece:{T5_SPM}",
                       inputs_length=512, targets_length=114, seq_len=512, num_workers=16))
    m.dtype = "bfloat16"   # the sizes: the T5-Base preset above
    c.mesh.shape = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "model": 1, "expert": 1})
    c.train.update(dict(batch_size=128, num_steps=2 ** 19, log_every=100, eval_every=10_000,
                        checkpoint_every=5_000, progress_bar=False))
    o.update(dict(name="adafactor", learning_rate=0.01, schedule="rsqrt", warmup_steps=10_000,
                  weight_decay=0.0, grad_clip_norm=0.0))
    e.update(dict(batch_size=256, max_batches=100))
  if "tiny" in flags:
    c.data.update(dict(inputs_length=32, seq_len=32))
    m.update(dict(d_model=32, d_ff=64, num_heads=2, head_dim=16, num_encoder_layers=1,
                  num_decoder_layers=1))
    defaults.smoke_run(c, batch_size=4, num_steps=3, checkpoint_every=2, eval_batch_size=8,
                       eval_max_batches=2)

  return config_lib.apply_variants(c, flags, values, max(1, m.d_ff // TOPK_DIVISOR))
