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

Fields of `config.model` (read by projects/lazy_neuron/model.py):
  name                    't5'
  vocab_size              embedding rows; must cover the tokenizer's ids (pad 0 ... sentinels)
  d_model, d_ff           widths; d_ff is the MLP hidden width
  num_heads, head_dim     attention heads and their width (d_kv); need not multiply to d_model
  num_encoder_layers, num_decoder_layers
  mlp_activation          relu (T5 v1.0) | gelu | geglu (T5 v1.1) | ... (see vit_mnist.py)
  top_k                   int for all MLPs, or a tuple: one per encoder layer, then one per
                          decoder layer; 0 = off; 0 <= k <= d_ff
  topk_mode               threshold | exact | approx (common.layers.topk)
  dropout_rate            one rate for residual, attention, MLP-hidden and embedding dropout
  relative_buckets, relative_max_distance   T5 relative position bias (32, 128)
  tie_embeddings          True: v1.0 shared embedding, logits scaled by d_model^-0.5
  z_loss                  coefficient of log(Z)^2 in the loss
  sow_activations         also sow raw MLP activations (probing; memory-heavy)
  dtype / param_dtype / remat_policy   from common.train.defaults
Extra `config.eval` fields: evaluators (loss | sparsity for T5), split_for_train_stats
(training split for 'sparsity'; '' to skip).
"""
import ml_collections

from common.train import defaults
from common.train import config_variants

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
  m.name = "t5"
  m.vocab_size = 384
  m.d_model = 128
  m.d_ff = 512
  m.num_heads = 4
  m.head_dim = 32
  m.num_encoder_layers = 2
  m.num_decoder_layers = 2
  m.mlp_activation = "relu"
  m.top_k = config_variants.int_or_tuple(0)
  m.topk_mode = "threshold"
  m.dropout_rate = 0.0
  m.relative_buckets = 32
  m.relative_max_distance = 128
  m.tie_embeddings = True
  m.z_loss = 1e-4
  m.sow_activations = False

  c.train.batch_size = 32
  c.train.num_steps = 500
  c.train.log_every = 50
  c.train.eval_every = 250
  c.train.checkpoint_every = 250

  o = c.optimizer
  o.name = "adamw"
  o.learning_rate = 2e-3
  o.schedule = "cosine"
  o.warmup_steps = 50
  o.weight_decay = 0.0
  o.grad_clip_norm = 1.0

  e = c.eval
  e.batch_size = 64
  e.splits = ("validation",)
  e.max_batches = 20
  e.evaluators = ("loss", "sparsity")
  e.split_for_train_stats = "train"

  if "base" in flags:
    c.data.update(dict(name="tfds:c4/en:3.1.0", tokenizer=f"sentencepiece:{T5_SPM}",
                       inputs_length=512, targets_length=114, seq_len=512, num_workers=16))
    m.update(dict(vocab_size=32128, d_model=768, d_ff=3072, num_heads=12, head_dim=64,
                  num_encoder_layers=12, num_decoder_layers=12, dropout_rate=0.1,
                  dtype="bfloat16"))
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
    c.train.update(dict(batch_size=4, num_steps=3, log_every=1, eval_every=0,
                        checkpoint_every=2))
    o.warmup_steps = 1
    e.update(dict(batch_size=8, max_batches=2))

  if "topk" in flags:
    m.top_k = max(1, m.d_ff // TOPK_DIVISOR)
  if "k" in values:
    m.top_k = values["k"]
  if "steps" in values:
    config_variants.set_steps(c, values["steps"])
  return c
