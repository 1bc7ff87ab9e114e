r"""Demo: a small SViT vs a same-size plain ViT on MNIST-5k, trained the same way on a CPU.

Command (2 CPU cores):

  python projects/svit/main.py --config projects/svit/configs/mnist_demo.py:svit \
    --workdir /tmp/svit_demo
  python projects/svit/main.py --config projects/svit/configs/mnist_demo.py:vit \
    --workdir /tmp/svit_demo_vit

Variants: svit (default) | vit (the baseline); demo (default) | tiny (seconds-long smoke run,
a two-stage SViT); steps=<int>.

Data: MNIST-5k (4,000 train / 1,000 test digits, 28x28x1) upsampled to 32x32 by the data
layer (bilinear): SViT's stride-4 stem leaves an 8x8 map whose first two stages still hold
several super tokens: stage 0 is 8x8 pixels in 4x4 blocks (2x2 super tokens), stage 1 is 4x4
in 2x2 blocks (2x2 super tokens), stages 2-3 (2x2, 1x1) are global MHSA as in the paper's
stages 3-4. No augmentation (flips and RandAugment do not suit digits in 2 minutes), no Mixup,
label smoothing 0.1, no drop path: the two models differ only in architecture.

Models: SViT with embed_dim (32, 64, 96, 128), depths (1, 1, 2, 1), heads (1, 2, 3, 4),
projection 256, layer scale in stages 3-4 (SViT-B's pattern); the ViT baseline
(common.tasks.image_configs.DEMO_VIT, shared with projects/biformer) has patch 4 (8x8 = 64
tokens), width 112, depth 4, 4 heads, MLP 448, mean pooling, chosen to have about the same
number of parameters (see the demo's table).

Optimiser (common.tasks.image_configs.mnist_demo_config, the same for both projects): AdamW
lr 1e-3, 50 warm-up steps, cosine, weight decay 0.05 on matrices, batch 64, 600 steps
(9.6 epochs).

Hardware and time: 2 CPU cores. Measured on a shared 2-core VM under load average 9-19: SViT
~1.2 s/step, 600 steps in ~12 minutes plus ~2 minutes of init/compile; an idle machine should
need a fraction of that (not measured idle). Result (measured, one seed): SViT 98.2 % test top-1
vs the ViT baseline's 90.5 % (743,930 vs 618,362 parameters).
"""
import ml_collections

from common.tasks import image_configs

ARCH = dict(embed_dim=(32, 64, 96, 128), depths=(1, 1, 2, 1), num_heads=(1, 2, 3, 4),
            n_iter=(1, 1, 1, 1), stoken_size=(4, 2, 1, 1), projection=256,
            layerscale=(False, False, True, True), init_values=1e-6, mlp_ratio=4.0)
# Two stages (both with super tokens): compiling the train step is most of a smoke run.
TINY_ARCH = dict(embed_dim=(8, 16), depths=(1, 1), num_heads=(1, 1), n_iter=(1, 1),
                 stoken_size=(4, 2), layerscale=(False, True), projection=32)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return image_configs.mnist_demo_config("svit", arg, arch=ARCH, tiny_arch=TINY_ARCH)
