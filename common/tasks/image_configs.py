"""config.model of the image-classification family (common/tasks/image.py): its fields, and
the model-config dataclass of a vision project built from them.

`ImageModelFields` is the base of those dataclasses: the fields every paper model of the family
has (the run's dtype and remat fields, the classes and channels the data decides, the
stochastic depth) with their checks. `model_config_from` is the body of the svit and biformer
`config.from_config`: it checks
config.model against the family's `MODEL_FIELDS` plus the project's own (common.config_contract)
and builds the project's dataclass from a paper preset, `config.model.arch` overrides and the
data's classes and channels (`data_fields`). The configs under which converted official
weights are evaluated are in common/tasks/image_convert.py.

`mnist_demo_config` and `imagenet_config` are the parts of the svit and biformer config files
that the two share: the 'paper model vs ViT' MNIST-5k demo, and the official DeiT-style
ImageNet-1k recipe; each project's config file adds its model and its documented numbers.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import ml_collections

from common import config_contract
from common.data import config as data_config
from common.data import mixup as mixup_lib
from common.layers import dtypes, keys
from common.train import config_variants, defaults


def num_classes(config: ml_collections.ConfigDict) -> int:
  if config.data.get("num_classes", 0):
    return int(config.data.num_classes)
  from common.data import pipeline  # reads the dataset's metadata: only when not configured
  return pipeline.num_classes(config.data)


# config.model fields of every vision project's config (the image task's own, checked by each
# project's `from_config`): the model choice, the preset and its training-only settings, Mixup
# (common.data.mixup.MixupConfig) and the ViT baseline (`build_baseline_vit`).
MODEL_FIELDS = {
    "name": None, "preset": None, "drop_path_rate": None, "train_mode": None,
    "mixup": tuple(f.name for f in dataclasses.fields(mixup_lib.MixupConfig)),
    "vit": ("patch_size", "width", "depth", "num_heads", "mlp_dim", "pool", "posemb",
            "dropout_rate"),
}


@dataclasses.dataclass(frozen=True)
class ImageModelFields(config_contract.ModelFields):
  """The fields every vision paper model's config has (its dataclass subclasses this one).

  Attributes:
    dtype: compute dtype (None: promoted from inputs and parameters); a name or a dtype.
    param_dtype: parameter dtype.
    remat_policy: per-block activation rematerialisation (common.layers.remat.POLICIES).
    num_classes: classifier outputs; 0 returns the pooled features.
    in_chans: input image channels.
    drop_path_rate: stochastic depth, linearly increasing over all blocks from 0.
  """
  dtype: Any = None
  num_classes: int = 1000
  in_chans: int = 3
  drop_path_rate: float = 0.0

  def __post_init__(self):
    super().__post_init__()
    if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) \
        or self.num_classes < 0:
      raise ValueError(f"num_classes={self.num_classes!r} must be an int >= 0 "
                       "(0 = no classifier, return pooled features).")
    if isinstance(self.in_chans, bool) or not isinstance(self.in_chans, int) \
        or self.in_chans < 1:
      raise ValueError(f"in_chans={self.in_chans!r} must be a positive int.")
    if not 0.0 <= self.drop_path_rate < 1.0:
      raise ValueError(f"drop_path_rate={self.drop_path_rate!r} must be in [0, 1).")
    object.__setattr__(self, "dtype", dtypes.resolve_dtype(self.dtype, "dtype"))
    object.__setattr__(self, "param_dtype", dtypes.resolve_dtype(self.param_dtype,
                                                                 "param_dtype"))

  @classmethod
  def of(cls, config: Any) -> "ImageModelFields":
    """`config` itself once it is a `cls`: a model takes only its own config dataclass."""
    if not isinstance(config, cls):
      raise ValueError(f"config={type(config).__name__} is invalid: expected a {cls.__name__} "
                       f"(see {cls.__module__}).")
    return config

  def layer_kwargs(self, rngs: Any) -> dict[str, Any]:
    """What every submodule of the model takes: the dtypes, and one key stream drawn once from
    the caller's `rngs` (common.layers.keys explains why one cheap stream)."""
    return dict(dtype=self.dtype, param_dtype=self.param_dtype, rngs=keys.KeyStream.of(rngs))

  def stage_drop_path_rates(self, depths: Sequence[int]) -> list[list[float]]:
    """Per-stage, per-block drop-path rates: linspace(0, rate, sum(depths)) split by stage
    (timm's rule, as both official models)."""
    total = sum(depths)
    flat = [self.drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
    out, start = [], 0
    for d in depths:
      out.append(flat[start:start + d])
      start += d
    return out


# Model-config fields the run decides, never `config.model.arch` overrides: classes and
# channels come from the data config, the drop-path rate from config.model.drop_path_rate.
DERIVED_FIELDS = tuple(f.name for f in dataclasses.fields(ImageModelFields)
                       if f.name not in config_contract.BASE_FIELDS)


def lookup_preset(name: str, presets: dict[str, Any], aliases: dict[str, str]) -> Any:
  """The preset called `name` (a paper name, or an official code name in `aliases`)."""
  key = aliases.get(name, name)
  if key not in presets:
    also = f" (or the official names {sorted(aliases)})" if aliases else ""
    raise ValueError(f"preset={name!r} is unknown; allowed: {sorted(presets)}{also}.")
  return presets[key]


def replace_fields(config: Any, overrides: dict[str, Any]) -> Any:
  """`dataclasses.replace(config, **overrides)`, naming unknown fields and the allowed ones."""
  fields = {f.name for f in dataclasses.fields(config)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f"unknown {type(config).__name__} field(s) {unknown}; allowed: "
                     f"{sorted(fields)}.")
  return dataclasses.replace(config, **overrides)


def model_config_from(m: ml_collections.ConfigDict, config_cls: type, presets: dict[str, Any],
                      fields: dict[str, Any], **data_fields: Any) -> Any:
  """A vision project's `from_config`: config.model -> its model-config dataclass.

  Checks config.model against `fields` (common.config_contract: an unknown field is an error
  naming it), then builds: the preset `m.preset` (or the dataclass defaults when ''), the
  `m.arch` overrides, every top-level config.model field that is a dataclass field (dtype,
  param_dtype, remat_policy, drop_path_rate, attention_impl, ...), and `data_fields`
  (num_classes, in_chans from the data config).
  """
  config_contract.check_fields(m, fields)
  if m.get("preset"):
    try:
      base = lookup_preset(m.preset, presets, {})
    except ValueError as e:
      raise ValueError(f"config.model.{e}") from e
  else:
    base = config_cls()
  names = config_contract.dataclass_fields(config_cls)
  arch = m.get("arch") or ml_collections.ConfigDict()
  values = {name: getattr(base, name) for name in names}
  values.update({k: v for k, v in arch.items() if v is not None})
  values.update({k: m[k] for k in m.keys() if k in names})
  values.update(data_fields)
  return config_contract.dataclass_from(config_cls, values)


def data_fields(config: ml_collections.ConfigDict) -> dict[str, int]:
  """The model-config fields the data decides: classes and input channels."""
  return dict(num_classes=num_classes(config), in_chans=int(config.data.get("channels", 0) or 3))


def mixup_config(prob: float) -> ml_collections.ConfigDict:
  """config.model.mixup: the DeiT recipe (common.data.mixup.MixupConfig) applied with `prob`
  (0: label smoothing only)."""
  return ml_collections.ConfigDict(dataclasses.asdict(mixup_lib.MixupConfig(prob=prob)))


# The ViT baseline of the MNIST-5k demos: patch 4 on 32x32 (8x8 = 64 tokens), about the size of
# the demo SViT and BiFormer; the same config in both projects, so one run serves both demos.
DEMO_VIT = dict(patch_size=4, width=112, depth=4, num_heads=4, mlp_dim=448, pool="gap",
                posemb="learn", dropout_rate=0.0)
DEMO_IMAGE_SIZE = 32

# The `colab` size of the demos (colab.ipynb on a Colab GPU/TPU runtime): Imagenette (the 10
# easy ImageNet classes; TFDS downloads the 160px-v2 archive, ~100 MB, and generates it with
# Colab's TensorFlow) at 128x128, so the stride-4 stem leaves a 32x32 map. Its ViT baseline:
# patch 8 (16x16 = 256 tokens), width 256, depth 7: 4.7M parameters, between the colab SViT
# (4.8M) and BiFormer (4.0M).
COLAB_DATA = "tfds:imagenette/160px-v2"
COLAB_IMAGE_SIZE = 128
COLAB_VIT = dict(patch_size=8, width=256, depth=7, num_heads=4, mlp_dim=768, pool="gap",
                 posemb="learn", dropout_rate=0.0)


def mnist_demo_config(project: str, arg: str | None, *, arch: dict[str, Any],
                      tiny_arch: dict[str, Any],
                      colab_arch: dict[str, Any] | None = None) -> ml_collections.ConfigDict:
  """The svit / biformer MNIST-5k demo config: `get_config(arg)` of configs/mnist_demo.py.

  `arg` picks the model (`project` (default) | vit: the baseline) and the size (demo (default)
  | tiny: a seconds-long smoke run, the ViT shrunk here and `tiny_arch` replacing fields of
  `arch`, the project's `config.model.arch` | colab: the same comparison larger, for a Colab
  GPU/TPU runtime, `colab_arch` replacing fields of `arch`, see below), and takes steps=<n>
  (config_variants.set_steps).
  MNIST-5k upsampled to 32x32, no augmentation, no Mixup, label smoothing 0.1, no drop path;
  AdamW lr 1e-3, 50 warm-up steps, cosine, weight decay 0.05 on matrices, batch 64, 600 steps;
  test top-1 and eval throughput.

  colab: Imagenette (`COLAB_DATA`, 9,469 train / 3,925 validation images, 10 classes; the only
  size whose data is downloaded: config.data.prepare=True) at 128x128 with Inception crop and
  flip, the ViT baseline `COLAB_VIT`; batch 128, 3,000 steps (~40 epochs), 150 warm-up steps,
  otherwise the demo's recipe.
  """
  flags, values = config_variants.parse(
      arg, groups=((project, "vit"), ("demo", "tiny", "colab")), keys={"steps": int})
  name = project if project in flags else "vit"
  c = defaults.base_config()
  c.project = project
  c.data = data_config.image_data_config(
      "mnist5k", train_split="train", eval_split="test", image_size=DEMO_IMAGE_SIZE, channels=1,
      num_classes=10, augment=(), num_workers=0)
  c.model.update(dict(name=name, preset="", arch=ml_collections.ConfigDict(arch),
                      drop_path_rate=0.0, train_mode=True, mixup=mixup_config(0.0),
                      vit=ml_collections.ConfigDict(DEMO_VIT)))
  c.train.update(dict(batch_size=64, num_steps=600, log_every=50, eval_every=0,
                      checkpoint_every=300))
  c.optimizer.update(dict(name="adamw", learning_rate=1e-3, schedule="cosine", warmup_steps=50,
                          weight_decay=0.05, weight_decay_mask="no_bias_norm"))
  c.eval.update(dict(batch_size=200, splits=("test",),
                     evaluators=("classification", "throughput"), throughput_warmup=1,
                     throughput_iters=3))
  if "tiny" in flags:
    c.model.arch.update(tiny_arch)
    c.model.vit.update(dict(width=16, depth=1, num_heads=2, mlp_dim=32))
    c.train.update(dict(batch_size=16, num_steps=4, log_every=2, checkpoint_every=4,
                        progress_bar=False))
    c.optimizer.warmup_steps = 1
    c.eval.update(dict(batch_size=40, max_batches=2, throughput_iters=1))
  if "colab" in flags:
    if not colab_arch:
      raise ValueError(f"{project}: the colab size needs the project's colab_arch.")
    c.data = data_config.image_data_config(
        COLAB_DATA, train_split="train", eval_split="validation", image_size=COLAB_IMAGE_SIZE,
        channels=3, num_classes=10, augment=("inception_crop", "flip"), prepare=True,
        num_workers=0)
    c.model.arch.update(colab_arch)
    c.model.vit = ml_collections.ConfigDict(COLAB_VIT)
    c.train.update(dict(batch_size=128, num_steps=3000, log_every=100, checkpoint_every=1000))
    c.optimizer.warmup_steps = 150
    c.eval.update(dict(batch_size=250, splits=("validation",)))
  if "steps" in values:
    config_variants.set_steps(c, values["steps"])
  return c


IMAGENET_TRAIN_IMAGES = 1_281_167


def imagenet_config(project: str, preset: str, *, drop_path_rate: float, image_size: int = 224,
                    crop_fraction: float = 0.875, batch_size: int = 1024, epochs: int = 300,
                    pretrain: bool = True) -> ml_collections.ConfigDict:
  """The svit / biformer ImageNet-1k recipe: the official DeiT-style training of paper `preset`.

  ImageNet-1k ('tfds:imagenet2012'), repeated augmentation (3 copies), Inception crop (bicubic) +
  flip + RandAugment + random erasing, eval resize and centre crop `crop_fraction`; Mixup 0.8 /
  CutMix 1.0 / label smoothing 0.1; AdamW (eps 1e-8, weight decay on matrices only, no
  clipping), EMA 0.99996 per step; bfloat16 compute; data parallel. `pretrain` sets the DeiT
  schedule: lr 5e-4 x batch / 512, 5 warm-up epochs, cosine to 1e-5, weight decay 0.05; a
  fine-tune (pretrain=False) sets its own learning rate, schedule and weight decay.
  """
  c = defaults.base_config()
  c.project = project
  c.data = data_config.image_data_config(
      "tfds:imagenet2012", train_split="train", eval_split="validation", image_size=image_size,
      channels=3, num_classes=1000, crop_fraction=crop_fraction,
      interpolation="bicubic",  # official timm transforms
      augment=("inception_crop", "flip", "randaugment", "random_erasing"), num_workers=16,
      repeated_aug=3)  # DeiT's RASampler, on by default in both official main.py files
  c.model.update(dict(name=project, preset=preset,
                      arch=ml_collections.ConfigDict(),  # the project's ARCH_FIELDS overrides
                      drop_path_rate=drop_path_rate, train_mode=True, mixup=mixup_config(1.0),
                      dtype="bfloat16"))
  steps_per_epoch = IMAGENET_TRAIN_IMAGES // batch_size
  c.train.update(dict(batch_size=batch_size, num_steps=epochs * steps_per_epoch, log_every=100,
                      eval_every=10 * steps_per_epoch, checkpoint_every=1000,
                      progress_bar=False))
  o = c.optimizer
  o.update(dict(name="adamw", b1=0.9, b2=0.999, eps=1e-8, weight_decay_mask="no_bias_norm",
                grad_clip_norm=0.0, ema_decay=0.99996))
  if pretrain:
    o.update(dict(learning_rate=5e-4 * batch_size / 512, schedule="cosine",
                  warmup_steps=5 * steps_per_epoch, weight_decay=0.05))
    o.end_lr_fraction = 1e-5 / o.learning_rate
  c.eval.update(dict(
      batch_size=1024,  # divisible by any power-of-two slice; the last batch is padded
      splits=("validation",), evaluators=("classification", "throughput"),
      throughput_warmup=2, throughput_iters=10))
  return c
