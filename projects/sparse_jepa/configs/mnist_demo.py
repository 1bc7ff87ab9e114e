r"""I-JEPA vs SparseJEPA on MNIST-5k with a tiny ViT: the demo that runs on a laptop CPU.

Commands (2 CPU cores; the same file runs on GPU/TPU):

  python projects/sparse_jepa/main.py \
    --config projects/sparse_jepa/configs/mnist_demo.py:ijepa --workdir /tmp/sj_ijepa
  python projects/sparse_jepa/main.py \
    --config projects/sparse_jepa/configs/mnist_demo.py:sparse --workdir /tmp/sj_sparse

Variants (comma-separated): ijepa (default) | sparse; demo (default) | tiny (seconds-long CI
run); steps=<int>.

Setup: MNIST-5k (4,000 train / 1,000 test digits), 28x28 grey, patch 4 -> a 7x7 grid of 49
patches. Encoder: ViT 64-d, depth 4, 4 heads (0.2 M parameters); predictor depth 2, 32-d. Masks:
the official ImageNet scales on the 7x7 grid (1 context block of scale 0.85-1.0, 4 target blocks
of scale 0.15-0.2, aspect 0.75-1.5) with min_keep 4 (the official 10 exceeds a 3x3 target
block); mask lengths rounded down to the ladder floor(1.5**i) so that jit compiles a handful of
programs, not one per length.
AdamW lr 1e-3 (warm-up 10 %, cosine to 1e-6), wd 0.04 constant (the official 0.04 -> 0.4 cosine
is not available in the trainer: see README), EMA 0.996 -> 1.0, batch 64, 1,000 steps (16
epochs). SparseJEPA adds the SparsityHead with its defaults (8 groups x 4 latents, 8 output
groups, lasso 1e-3 by proximal steps) on the context tokens.

colab (the notebook's setting for a Colab GPU, the SparseJEPA paper's data): CIFAR-100
('tfds:cifar100', 50,000 train / 10,000 test 32x32 RGB images, 100 classes; TFDS downloads and
prepares it on first use, config.data.prepare), patch 4 (8x8 grid), a 192-d 6-layer ViT (ViT-Tiny's
width, half its depth) with a 4-layer 96-d predictor, batch 256, 20 epochs (3,900 steps), the same
optimiser and masks. Time: an ESTIMATE, not measured (no GPU here): the four trainings of the demo
(I-JEPA, SparseJEPA and the lambda 3 / 10 sweep) in ~30-45 min on a Colab T4, less on an A100.

Hardware and time (2026-12-04, 2-core machine, load 2-4): I-JEPA 191 s, SparseJEPA 274 s (each
new mask length costs one compile), plus ~80 s for the untrained-encoder baseline; the demo's
lasso sweep adds ~200 s per lambda. `:tiny` runs in seconds (plus compilation).

Expected result (that run; README.md "Measured results"): linear-probe test accuracy 73.2 %
(I-JEPA) and 76.0 % (SparseJEPA) vs 71.9 % for the untrained encoder; pixel-mean / pixel-std R^2
1.000 / 0.98; the features' spread across images shrinks (partial collapse at this scale);
SparseJEPA at lasso 1e-3 keeps 100 % of its latent units and prunes no decoder block; the
proximal lasso prunes 73 % of the blocks at lambda 3 (probe 75.9 %) and all at 10 (74.2 %).
"""
import ml_collections

from common.train import config_variants, defaults
from projects.sparse_jepa import config as config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = config_variants.parse(arg, groups=(("ijepa", "sparse"),
                                                     ("demo", "tiny", "colab")),
                                        keys={"steps": int})
  c = config_lib.base_config()
  c.data = ml_collections.ConfigDict(dict(
      name="mnist5k", train_split="train", eval_split="test", image_size=28, channels=1,
      num_classes=10, augment=(), num_workers=0))

  m = c.model
  m.encoder = "custom"
  m.embed_dim, m.depth, m.num_heads, m.mlp_ratio = 64, 4, 4, 4.0
  m.patch_size = 4
  m.pred_depth, m.pred_emb_dim = 2, 32
  m.mask.min_keep = 4
  # Lengths vary per batch (context 5-12 patches, targets 6-9 here): a ladder of ratio 1.5 keeps
  # it to a handful of compiled programs (at most a third of the kept patches dropped).
  m.mask.keep_bucket = 1.5

  c.train.update(dict(batch_size=64, num_steps=1000, log_every=50, eval_every=0,
                      checkpoint_every=500))
  # Official: final_lr / lr = 1e-6 / 1e-3; weight decay cosine 0.04 -> 0.4 over the run.
  c.optimizer.update(dict(learning_rate=1e-3, warmup_steps=100, end_lr_fraction=1e-3,
                          weight_decay=0.04, weight_decay_schedule="cosine",
                          final_weight_decay=0.4))
  e = c.eval
  e.update(dict(batch_size=250, splits=("test",)))

  if "tiny" in flags:
    m.embed_dim, m.depth, m.num_heads = 16, 1, 2
    m.pred_depth, m.pred_emb_dim = 1, 8
    m.sparsity.num_output_groups = 4
    m.sparsity.num_latent_groups, m.sparsity.latent_group_size = 4, 2
    defaults.smoke_run(c, batch_size=16, num_steps=3, eval_batch_size=40, eval_max_batches=1)
    # Ladder 1, 4, 16: every length here (context 5-12, targets 6-9) becomes 4, so CI compiles
    # one train step (a smoke setting, not a training recipe).
    m.mask.keep_bucket = 4.0
    e.probe_max_batches = 2
    # 'loss' compiles one more forward per mask length; CI tests the eval loss directly.
    e.evaluators = ("linear_probe", "lowlevel_probe")
  if "colab" in flags:
    _colab(c)
  if "steps" in values:
    config_variants.set_steps(c, values["steps"])
  return config_lib.finish(c, "sparse" in flags)


def _colab(c: ml_collections.ConfigDict) -> None:
  """The notebook's Colab setting (module doc): CIFAR-100, downloaded by TFDS on first use."""
  c.data = ml_collections.ConfigDict(dict(
      name="tfds:cifar100", prepare=True, train_split="train", eval_split="test", image_size=32,
      channels=3, num_classes=100, augment=(), mean=(0.5071, 0.4865, 0.4409),
      std=(0.2673, 0.2564, 0.2762)))
  m = c.model
  m.embed_dim, m.depth, m.num_heads = 192, 6, 3       # ViT-Tiny's width, half its depth
  m.pred_depth, m.pred_emb_dim = 4, 96
  m.mask.keep_bucket = 1.25
  steps = 20 * (50_000 // 256)                          # 20 epochs
  c.train.update(dict(batch_size=256, num_steps=steps, log_every=100, checkpoint_every=1000))
  c.optimizer.warmup_steps = steps // 10
  c.eval.batch_size = 500
