r"""SViT-S/B/L on ImageNet-1k with the official (DeiT-style) recipe; 384 fine-tune variant.

Command (TPU VM; every host runs the same command):

  python projects/svit/main.py --config projects/svit/configs/imagenet.py:SViT-S \
    --workdir /mnt/runs/svit_s_224
  # evaluate a run, or converted official weights (projects/svit/convert.py --to_checkpoint):
  python projects/svit/main.py --config projects/svit/configs/imagenet.py:SViT-S \
    --workdir /mnt/runs/svit_s_224 --mode=eval

Variants: SViT-S (default) | SViT-B | SViT-L; 224 (default) | 384 (fine-tune);
steps=<int> (shorter runs, warm-up capped at a tenth).

Hardware and time: the official runs used 8 GPUs x 128 images (batch 1024). Here batch 1024
over a TPU v4-32 / v5e-64 class slice, pure data parallelism by default (SViT-L has 95 M
parameters: fits every chip); for bigger batches per chip or smaller chips shard the
parameters too with `--config.mesh.shape.fsdp=4` (the 'embed' axis goes to 'fsdp').
Time: not measured (no TPU in this session).

Expected result (the authors' README, not reproduced here): top-1 83.6 (S), 84.8 (B),
85.3 (L) at 224; 85.0 / 86.0 / 86.4 after the 384 fine-tune.

Recipe (shared/specs/vision.md §1.5, the official main.py defaults and README commands;
common.tasks.image_configs.imagenet_config, shared with BiFormer):
  - AdamW, eps 1e-8, betas (0.9, 0.999), weight decay 0.05 on matrices/kernels only (timm skips
    biases and norm vectors), no clipping; lr 5e-4 x batch / 512 = 1e-3, 5 warm-up epochs,
    cosine to min_lr 1e-5, 300 epochs. Deviations: the schedule here is per step (official:
    per epoch), warm-up starts at 0 (official warmup_lr 1e-6), no 10-epoch cooldown.
  - Augmentation: Inception crop (bicubic, as official) + flip + RandAugment
    rand-m9-mstd0.5-inc1 + random erasing 0.25 ('pixel') (common/data/augment_imagenet.py),
    Mixup 0.8 / CutMix 1.0 / switch 0.5 / label smoothing 0.1 (common/data/mixup.py, on
    device). Colour jitter 0.4 is inactive in timm when RandAugment is on, so it is absent.
  - Repeated augmentation (DeiT's RASampler, 3 copies; config.data.repeated_aug,
    common.data.image_pipeline.RepeatedAugmentation): the copies are consecutive rows of one
    global batch rather than one row on each of 3 GPUs, the same examples per step.
  - EMA of parameters, decay 0.99996 per step (timm ModelEma); eval reports both.
  - Stochastic depth per variant: S 0.1 (README; run.sh uses 0.3), B 0.4, L 0.6 (README; it
    ran 0.4 until epoch 260).
  - Eval: resize the shorter side to 256/224 x size and centre-crop (crop_pct 0.875) at 224;
    at 384 resize to 384 and centre-crop (crop_pct 1.0). Bicubic, as official.
  - 384 fine-tune: batch 512, 30 epochs, constant lr 5e-6 (= min_lr), no warm-up, wd 1e-8, same
    drop_path, model kept in eval mode during training (official `set_training_mode=False`:
    BN running statistics, no drop path) via config.model.train_mode=False. Start it from the
    224 run's parameters (same shapes: SViT has no position table) with
    `--config.train.init_from=<224 workdir>` (its EMA parameters when it kept them).
  - bfloat16 compute (the official runs used AMP float16), float32 parameters.
"""
import ml_collections

from common.tasks import image_configs
from common.train import config_variants
from projects.svit import config as svit_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = config_variants.parse(
      arg, groups=(("SViT-S", "SViT-B", "SViT-L"), ("224", "384")), keys={"steps": int})
  preset = next(f for f in flags if f.startswith("SViT"))
  finetune = "384" in flags
  c = image_configs.imagenet_config(
      "svit", preset, drop_path_rate=svit_config.TRAIN_DROP_PATH[preset],
      image_size=384 if finetune else 224, crop_fraction=1.0 if finetune else 0.875,
      batch_size=512 if finetune else 1024, epochs=30 if finetune else 300,
      pretrain=not finetune)
  if finetune:
    c.model.train_mode = False
    c.optimizer.update(dict(learning_rate=5e-6, schedule="constant", warmup_steps=0,
                            weight_decay=1e-8))
  if "steps" in values:
    config_variants.set_steps(c, values["steps"])
  return c
