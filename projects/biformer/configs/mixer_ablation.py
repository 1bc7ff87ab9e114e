r"""The token-mixer ablation: one BiFormer-STL backbone, only the token mixer changes.

Command (2 CPU cores; one run per mixer and seed: ~1.5-2 min, `all` ~4 min):

  python projects/biformer/main.py \
    --config projects/biformer/configs/mixer_ablation.py:top4 --config.seed=0 \
    --workdir /tmp/mixers/top4_s0

Variants (the mixer of stages 0-2, the 28x28, 14x14 and 7x7 maps cut into 7 x 7 regions;
stage 3, 3x3, is global attention in every row, as in BiFormer and SViT):
  top4    bi-level routing attention, each region reads its top 4 of 49 regions (the paper's)
  top1    the same, top 1
  all     every region reads all 49: global attention with BRA's projections and LePE
  local   each region reads itself only (Swin-style windows of 4x4, 2x2, 1x1 tokens, unshifted)
  stoken  SViT's super-token attention, one super token per region (svit/mixers.py); at 7x7
          a region is one pixel, so stage 2 is global MHSA there (SViT's stoken_size 1)
and demo (default) | tiny (a seconds-long smoke run); steps=<int>.

Everything else is equal: the STL layout (patch-4 conv stem, BN + conv2x2 merging, pre-norm,
no pos-embed), widths (32, 64, 96, 128), one block per stage, head_dim 16, MLP ratio 3, LePE
5x5 in every mixer; AdamW lr 1e-3 (50 warm-up steps, cosine), weight decay 0.05, batch 32,
500 steps, label smoothing 0.1, no augmentation.

Data: `mnist_pairs` (common/data/builders/mnist_pairs): two MNIST-5k digits in opposite
quadrants of a 112x112 canvas, labelled by the larger digit, so the label needs both (a model
that sees one digit is right ~55% of the time, always-9 19%). 8,000 train / 2,000 test
canvases, composed from disjoint digits. The README's ablation table (3 seeds per mixer)
comes from `python -m projects.biformer.demo ablation OUT`.
"""
import ml_collections

from common.data import config as data_config
from common.train import config_variants
from common.tasks import image_configs

ROUTED = (0, 1, 2)  # stages whose mixer changes; stage 3 is global attention
VARIANTS = {
    "top4": dict(mixer="bra", k=4),
    "top1": dict(mixer="bra", k=1),
    "all": dict(mixer="bra", k=49),
    "local": dict(mixer="local", k=1),
    "stoken": dict(mixer="stoken", k=1),
}
ARCH = dict(layout="stl", depth=(1, 1, 1, 1), embed_dim=(32, 64, 96, 128),
            qk_dims=(32, 64, 96, 128), head_dim=16, mlp_ratios=(3, 3, 3, 3), n_win=7,
            side_dwconv=5, before_attn_dwconv=0)
TINY_ARCH = dict(embed_dim=(16, 16, 16, 16), qk_dims=(16, 16, 16, 16))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = config_variants.parse(arg, groups=(tuple(VARIANTS), ("demo", "tiny")),
                                        keys={"steps": int})
  variant = next((v for v in VARIANTS if v in flags), "top4")
  tiny = "tiny" in flags
  c = image_configs.mnist_demo_config("biformer", "tiny" if tiny else "demo", arch=ARCH,
                                      tiny_arch=TINY_ARCH)
  c.data = data_config.image_data_config(
      "mnist_pairs", train_split="train", eval_split="test", image_size=112, channels=1,
      num_classes=10, augment=(), num_workers=0)
  v = VARIANTS[variant]
  c.model.arch.mixer = v["mixer"]
  c.model.arch.topks = tuple(v["k"] if i in ROUTED else -2 for i in range(4))
  c.model.attention_impl = "official"
  if not tiny:
    c.train.update(dict(batch_size=32, num_steps=500, checkpoint_every=250))
    c.eval.batch_size = 250
  if "steps" in values:
    config_variants.set_steps(c, values["steps"])
  return c
