r"""BiFormer-T/S/B/STL on ImageNet-1k with the official (DeiT-style) recipe.

Command (TPU VM; every host runs the same command):

  python projects/biformer/main.py --config projects/biformer/configs/imagenet.py:BiFormer-T \
    --workdir /mnt/runs/biformer_t
  # evaluate a run, or converted official weights (projects/biformer/convert.py --to_checkpoint):
  python projects/biformer/main.py --config projects/biformer/configs/imagenet.py:BiFormer-T \
    --workdir /mnt/runs/biformer_t --mode=eval

Variants: BiFormer-T (default) | BiFormer-S | BiFormer-B | BiFormer-STL; steps=<int>.
The routed attention is `--config.model.attention_impl`: official (default; the official
gather + dense softmax) or a kernel impl of common.kernels.block_sparse_attention (auto: the
Pallas kernel on TPU/GPU, its XLA path elsewhere; xla | pallas_tpu | pallas_gpu | ...).

Hardware and time: the README trains on 8 GPUs x 128 = batch 1024 (lr 1e-3); scripts/train.sh
runs S on 16 GPUs x 128 = 2048 (lr 2e-3) and the author suggests 2048 for T too (issue #32).
Here batch 1024 on a TPU v4-32 / v5e-64 class slice, data parallel (BiFormer-B has 57 M
parameters); `--config.train.batch_size=2048 --config.optimizer.learning_rate=2e-3` gives the
train.sh setting; `--config.mesh.shape.fsdp=4` shards parameters over 'fsdp' too.
Time: not measured (no TPU in this session).

Expected result (the authors' README, not reproduced here): top-1 81.4 (T), 83.8 (S),
84.3 (B), 82.7 (STL) at 224.

Recipe (shared/specs/vision.md §2.5; the DeiT script "with no modification of training logic";
common.tasks.image_configs.imagenet_config, shared with SViT):
  - AdamW, eps 1e-8, wd 0.05 on matrices/kernels only, no clipping; lr 5e-4 x batch / 512,
    5 warm-up epochs, cosine to min_lr 1e-5, 300 epochs. Deviations: per-step schedule
    (official: per epoch), warm-up from 0 (official 1e-6), no 10-epoch cooldown.
  - Augmentation: Inception crop (bicubic, as official) + flip + RandAugment
    rand-m9-mstd0.5-inc1 + random erasing 0.25 (common/data/augment_imagenet.py), Mixup 0.8 /
    CutMix 1.0 / switch 0.5 / label smoothing 0.1 (common/data/mixup.py, on device). Colour
    jitter is inactive in timm when RandAugment is on. Repeated augmentation, 3 copies (DeiT's
    RASampler; config.data.repeated_aug), as in the official main.py.
  - EMA 0.99996 per step; eval reports raw and EMA parameters.
  - Stochastic depth: T 0.1 (issue #32, accepted by the author), S 0.15 (README/train.sh),
    STL 0.1 (train.sh); B is not stated anywhere: 0.3 here is an assumption.
  - Eval: shorter side to 256/224 x 224, centre crop 224 (crop_pct 0.875), bicubic
    as official.
  - bfloat16 compute (official AMP float16), float32 parameters.
"""
import ml_collections

from common.tasks import image_configs
from common.train import config_variants

PRESETS = ("BiFormer-T", "BiFormer-S", "BiFormer-B", "BiFormer-STL")
DROP_PATH = {"BiFormer-T": 0.1, "BiFormer-S": 0.15, "BiFormer-B": 0.3, "BiFormer-STL": 0.1}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = config_variants.parse(arg, groups=(PRESETS,), keys={"steps": int})
  preset = next(f for f in flags if f in PRESETS)
  c = image_configs.imagenet_config("biformer", preset, drop_path_rate=DROP_PATH[preset])
  c.model.attention_impl = "official"
  if "steps" in values:
    config_variants.set_steps(c, values["steps"])
  return c
