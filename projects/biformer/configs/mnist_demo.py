r"""Demo: a small BiFormer vs a same-size plain ViT on MNIST-5k, trained the same way on a CPU.

Command (2 CPU cores; `:vit` instead of `:biformer` trains the ViT baseline, the same run as
projects/svit/configs/mnist_demo.py:vit):

  python projects/biformer/main.py --config projects/biformer/configs/mnist_demo.py:biformer \
    --workdir /tmp/biformer_demo

Variants: biformer (default) | vit (the baseline); demo (default) | tiny (seconds-long smoke
run) | colab (colab.ipynb on a Colab GPU/TPU runtime, below); steps=<int>. `--config.model.attention_impl` picks the routed attention (official by
default; projects/biformer/config.py ATTENTION_IMPLS).

Data: MNIST-5k (4,000 train / 1,000 test digits, 28x28x1) upsampled to 32x32 by the data layer
(bilinear), so that the stride-4 stem leaves an 8x8 map that n_win=4 cuts into 4x4 regions of
2x2 tokens. Stage 0 (8x8) routes each region to its top-4 of 16 regions; stage 1 (4x4, one
token per region) to its top-4; stages 2-3 (2x2, 1x1) are too small to partition and use global
attention with LePE (topk -2), as the paper's last stage does at 7x7 (issue #25). No
augmentation, no Mixup, label smoothing 0.1, no drop path: the two models differ only in
architecture.

Models: BiFormer (legacy layout: conv stem, DW3x3 pos-embed, LePE 5x5) with embed_dim
(32, 64, 96, 128), depth (1, 1, 2, 1), head_dim 16, mlp_ratios 3; the ViT baseline
(common.tasks.image_configs.DEMO_VIT) has patch 4 (8x8 = 64 tokens), width 112, depth 4, 4
heads, MLP 448, mean pooling: about the same number of parameters (see the demo's table). The
same baseline config as projects/svit/configs/mnist_demo.py.

colab: the same comparison larger, the only size that downloads its data (config.data.prepare):
Imagenette ('tfds:imagenette/160px-v2', ~100 MB, 10 classes, 9,469 train / 3,925 validation
images; TFDS generates it with Colab's TensorFlow) at 128x128, Inception crop + flip; BiFormer
COLAB_ARCH (widths 64-256, depths 1-2-4-2, head_dim 32, n_win 4, top 4, 4, 8 of 16 regions in
stages 0-2; 4.0M parameters) vs the ViT image_configs.COLAB_VIT (patch 8, width 256, depth 7;
4.7M); batch 128, 3,000 steps. Time: an ESTIMATE, not measured (no GPU here): ~15-30 min for
both runs on an A100 or a TPU, ~45-60 min on a T4.

Optimiser (common.tasks.image_configs.mnist_demo_config, the same as svit's): AdamW lr 1e-3,
50 warm-up steps, cosine, weight decay 0.05 on matrices, batch 64, 600 steps (9.6 epochs).

Hardware and time: 2 CPU cores. Measured on a shared 2-core VM (load average ~5): BiFormer
~3.3 steps/s, 600 steps in ~3 minutes plus ~1 minute of init/compile. Result (measured, one
seed): BiFormer 98.3 % test top-1 vs the ViT baseline's 90.5 % (609,994 vs 618,362 parameters).
"""
import ml_collections

from common.tasks import image_configs

ARCH = dict(depth=(1, 1, 2, 1), embed_dim=(32, 64, 96, 128), qk_dims=(32, 64, 96, 128),
            head_dim=16, mlp_ratios=(3, 3, 3, 3), topks=(4, 4, -2, -2), n_win=4, side_dwconv=5,
            before_attn_dwconv=3, layout="legacy")
TINY_ARCH = dict(embed_dim=(16, 16, 16, 16), qk_dims=(16, 16, 16, 16), depth=(1, 1, 1, 1))
# colab (128x128 Imagenette): n_win 4 cuts the 32, 16 and 8 maps of stages 0-2 into 4x4
# regions of 8x8, 4x4 and 2x2 tokens; each query region routes to its top 4, 4 and 8 of 16;
# stage 3 (4x4) is global. Wider and deeper than the demo.
COLAB_ARCH = dict(depth=(1, 2, 4, 2), embed_dim=(64, 128, 192, 256), qk_dims=(64, 128, 192, 256),
                  head_dim=32, topks=(4, 4, 8, -2))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = image_configs.mnist_demo_config("biformer", arg, arch=ARCH, tiny_arch=TINY_ARCH,
                                      colab_arch=COLAB_ARCH)
  c.model.attention_impl = "official"
  return c
