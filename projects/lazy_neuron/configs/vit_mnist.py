r"""ViT on MNIST-5k: activation sparsity of ReLU MLPs, top-k vs dense ReLU vs dense GELU.

Command (CPU laptop / 2-core VM; the same file runs on GPU/TPU):

  python projects/lazy_neuron/main.py \
    --config projects/lazy_neuron/configs/vit_mnist.py:demo,topk --workdir /tmp/ln_topk

Variants (comma-separated, `get_config(arg)`):
  size:       demo (default) | tiny (seconds-long CI smoke run)
  MLP:        relu (default; dense ReLU) | topk (ReLU + top-k, k = mlp_dim // 24) | gelu (dense
              GELU baseline; its 'act_nonzero' is ~1.0 because GELU is almost never exactly 0)
  overrides:  label_noise=<fraction> (data-layer label randomisation), k=<int> (sets top_k;
              with a dense variant it turns top-k on all the same), steps=<int> (warm-up is
              capped at a tenth of the steps)
  e.g. `vit_mnist.py:demo,topk,label_noise=0.4`.

Hardware and time: 2 CPU cores. One jitted AdamW train step of the demo (batch 64, timed in
isolation, not through the trainer) took 80-150 ms with dense ReLU, +10-15 % with top-k
('threshold' mode; 'exact' +20 %) and +10 % with GELU, on a 2-core VM shared with other jobs
(load average 3-4; the spread is that load). 800 steps are then ~1-2 minutes plus compilation
and evaluation. End-to-end wall time: to be measured.

Expected result (to be measured): test accuracy ~95-97 % for all three MLPs on MNIST-5k
(4,000 training / 1,000 test images, no augmentation). 'act_nonzero/mean': dense ReLU well
below 50 % and falling during training (the lazy-neuron effect; a tiny model on MNIST is much
less sparse than ViT-B/16's 6.3 %); top-k at most k / mlp_dim = 4.1 % by construction (barring
exact ties); GELU ~100 %.
With label_noise=0.4 the paper's claim is that top-k degrades less than dense (unconfirmed
setup; paper_facts.md §1.3).

Choice of k: k = mlp_dim // 24 (21 of 512 here, 128 of 3072 for ViT-B/16 in
vit_b16_imagenet.py). k = 128 of 3072 is the spec's recollection of the paper's k for ViT-B/16
and is NOT confirmed; the ratio (4.2 %) sits below the natural 6.3 % the abstract reports for
ViT-B/16, i.e. "an even sparser activation via top-k with a small k". One k is shared by all
layers (the recollection, also unconfirmed); `config.model.top_k` also accepts a tuple with one
k per layer: `--config.model.top_k='(32, 32, 0, 0)'`.

Fields of `config.model` (read by projects/lazy_neuron/model.py):
  name                    'vit'
  patch_size              patch side p; must divide config.data.image_size
  width                   token width D; divisible by num_heads (and by 4 for posemb sincos2d)
  depth                   number of encoder blocks
  num_heads               attention heads
  mlp_dim                 MLP hidden width d_ff
  mlp_activation          relu | gelu (exact erf) | gelu_tanh | relu2 | silu | geglu | swiglu |
                          reglu
  top_k                   int for all layers or tuple (one per layer); 0 = off; 0 <= k <= mlp_dim
  topk_mode               threshold (a >= k-th value; ties kept; fastest) | exact (exactly k
                          kept) | approx (lax.approx_max_k, TPU)
  pool                    cls (class token) | gap (mean of patch tokens)
  posemb                  learn | sincos2d
  dropout_rate            residual, embedding and MLP-hidden dropout (train only)
  attention_dropout_rate  dropout on attention weights (train only)
  head_zero_init          zero-initialise the classifier head (big_vision default)
  label_smoothing         in the training loss only
  sow_activations         also sow raw MLP activations (for probes; memory-heavy)
  dtype / param_dtype / remat_policy   from common.train.defaults
The image size, channels and number of classes come from config.data.
Extra `config.eval` fields: evaluators (names: loss | classification | sparsity | robustness,
see projects/lazy_neuron/evaluators.py), split_for_train_stats (training split for 'sparsity';
'' to skip), sigmas (Gaussian input-noise strengths for 'robustness').
"""
import ml_collections

from common.train import defaults
from common.train import config_variants

TOPK_DIVISOR = 24  # k = mlp_dim // 24, see the module docstring


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = config_variants.parse(
      arg, groups=(("demo", "tiny"), ("relu", "topk", "gelu")),
      keys={"label_noise": float, "k": int, "steps": int})
  c = defaults.base_config()
  c.project = "lazy_neuron"

  c.data = ml_collections.ConfigDict(dict(
      name="mnist5k", train_split="train", eval_split="test", image_size=28, channels=1,
      num_classes=10, augment=(), label_noise=values.get("label_noise", 0.0), num_workers=0))

  m = c.model
  m.name = "vit"
  m.patch_size = 7        # 4 x 4 = 16 patches: a quarter of patch 4's cost, same accuracy class
  m.width = 128
  m.depth = 4
  m.num_heads = 4
  m.mlp_dim = 512
  m.mlp_activation = "relu"
  m.top_k = config_variants.int_or_tuple(0)
  m.topk_mode = "threshold"
  m.pool = "gap"
  m.posemb = "learn"
  m.dropout_rate = 0.0
  m.attention_dropout_rate = 0.0
  m.head_zero_init = True
  m.label_smoothing = 0.0
  m.sow_activations = False

  c.train.batch_size = 64
  c.train.num_steps = 800   # 12.8 epochs of MNIST-5k's 4,000 training images
  c.train.log_every = 50
  c.train.eval_every = 200
  c.train.checkpoint_every = 400

  o = c.optimizer
  o.name = "adamw"
  o.learning_rate = 1e-3
  o.schedule = "cosine"
  o.warmup_steps = 50
  o.weight_decay = 1e-4
  o.grad_clip_norm = 1.0

  e = c.eval
  e.batch_size = 250
  e.splits = ("test",)
  e.evaluators = ("classification", "sparsity", "robustness")
  e.split_for_train_stats = "train"   # 'sparsity' also runs on training data
  # Pixels arrive normalised to [-1, 1] (the data layer's default mean/std 0.5), so sigma 1.0
  # is half the pixel range.
  e.sigmas = (0.25, 0.5, 1.0)

  if "tiny" in flags:
    m.width, m.depth, m.num_heads, m.mlp_dim = 32, 2, 2, 64
    c.train.batch_size = 16
    c.train.num_steps = 4
    c.train.log_every = 1
    c.train.eval_every = 0
    c.train.checkpoint_every = 2
    c.optimizer.warmup_steps = 1
    e.batch_size = 32
    e.max_batches = 2
    e.evaluators = ("loss", "classification", "sparsity", "robustness")

  if "gelu" in flags:
    m.mlp_activation = "gelu"
  if "topk" in flags:
    m.top_k = max(1, m.mlp_dim // TOPK_DIVISOR)
  if "k" in values:
    m.top_k = values["k"]
  if "steps" in values:
    config_variants.set_steps(c, values["steps"])
  return c
