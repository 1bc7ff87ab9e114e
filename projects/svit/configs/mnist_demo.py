r"""Demo: a small SViT vs a same-size plain ViT on MNIST-5k, trained the same way on a CPU.

Command (2 CPU cores):

  python projects/svit/main.py --config projects/svit/configs/mnist_demo.py:svit \
    --workdir /tmp/svit_demo
  python projects/svit/main.py --config projects/svit/configs/mnist_demo.py:vit \
    --workdir /tmp/svit_demo_vit

Variants: svit (default) | vit (the baseline); demo (default) | tiny (seconds-long smoke run,
a two-stage SViT) | colab (colab.ipynb on a Colab GPU/TPU runtime, below); steps=<int>.

colab: the same comparison larger, the only size that downloads its data (config.data.prepare):
Imagenette ('tfds:imagenette/160px-v2', ~100 MB, 10 classes, 9,469 train / 3,925 validation
images; TFDS generates it with Colab's TensorFlow) at 128x128, Inception crop + flip; SViT
COLAB_ARCH (widths 64-256, depths 1-2-4-2, super tokens of 8x8 and 4x4 pixels: 4x4 grids in
stages 0-1; 4.8M parameters) vs the ViT image_configs.COLAB_VIT (patch 8, width 256, depth 7;
4.7M); batch 128, 3,000 steps. Time: an ESTIMATE, not measured (no GPU here): ~15-30 min for
both runs on an A100 or a TPU, ~45-60 min on a T4.

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
# colab (128x128 Imagenette, 32x32 stage-0 map): the paper's super-token sizes (8, 4, 1, 1), so
# stages 0 and 1 each hold a 4x4 grid of super tokens, as SViT-S's 7x7 at 224; wider and deeper.
COLAB_ARCH = dict(embed_dim=(64, 128, 192, 256), depths=(1, 2, 4, 2), num_heads=(1, 2, 3, 4),
                  stoken_size=(8, 4, 1, 1), projection=512)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return image_configs.mnist_demo_config("svit", arg, arch=ARCH, tiny_arch=TINY_ARCH,
                                         colab_arch=COLAB_ARCH)
