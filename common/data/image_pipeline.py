"""grain pipelines for image classification: {'image': float32 [B,H,W,C], 'label': int32 [B]}."""
from __future__ import annotations

import math
from typing import Any

import grain
import numpy as np

from common.data import augment
from common.data import image_ops
from common.data import label_noise
from common.data import process_order
from common.data import rng as rng_lib
from common.data import sources
from common.data import workers


def num_classes(cfg, info) -> int:
  if not cfg.label_key:
    return int(cfg.num_classes or 1)  # unlabelled: every example carries label 0
  feature = info.features[cfg.label_key]
  found = getattr(feature, "num_classes", None)
  if cfg.num_classes and found and cfg.num_classes != found:
    raise ValueError(f"config.data.num_classes={cfg.num_classes} but dataset {cfg.name!r} has "
                     f"{found} classes; set 0 to use the dataset's count.")
  if not (cfg.num_classes or found):
    raise ValueError(f"config.data.num_classes=0 but {cfg.name!r}'s {cfg.label_key!r} feature "
                     "is not a ClassLabel; set num_classes explicitly.")
  return int(cfg.num_classes or found)


def output_shape(cfg, info) -> tuple[int, int, int]:
  native = tuple(info.features[cfg.image_key].shape)
  if cfg.image_size:
    h = w = cfg.image_size
  else:
    h, w = native[0], native[1]
    if h is None or w is None:
      raise ValueError(f"config.data.image_size=0 but {cfg.name!r} images vary in size; "
                       "set image_size.")
  c = cfg.channels or (native[2] if len(native) == 3 else 1)
  if c is None:
    raise ValueError(f"config.data.channels=0 but {cfg.name!r} has no fixed channel count.")
  return int(h), int(w), int(c)


class ImageTransform:
  """One raw TFDS example -> {'image', 'label'}; train adds augmentation from `rng`.

  Order: decode -> geometry (train with 'inception_crop': random-resized-crop to the output
  size; else 'imagenet': resize + centre crop; else resize) -> channels -> [0, 1] floats ->
  the other augment ops in config order -> normalise.
  """

  def __init__(self, cfg, info, *, train: bool):
    self.cfg = cfg
    self.train = train
    self.shape = output_shape(cfg, info)
    names = list(cfg.augment) if train else []
    self.inception_crop = "inception_crop" in names
    self.ops = [augment.get(n) for n in names if n not in augment.GEOMETRY_OPS]

  def _geometry(self, raw: Any, rng: np.random.Generator | None) -> np.ndarray:
    h, w, _ = self.shape
    resample = image_ops.INTERPOLATIONS[self.cfg.get("interpolation", "bilinear")]
    if self.inception_crop:
      return image_ops.inception_crop(raw, h, w, rng, resample=resample,
                                      scale=tuple(self.cfg.get("crop_scale", (0.08, 1.0))))
    if self.cfg.preprocess == "imagenet":
      return image_ops.decode_resize_center_crop(raw, h, w, self.cfg.crop_fraction,
                                                 resample=resample)
    return image_ops.resize(image_ops.to_hwc(np.asarray(raw, np.uint8)), h, w)

  def __call__(self, element: dict[str, Any], rng: np.random.Generator | None = None):
    cfg = self.cfg
    image = self._geometry(element[cfg.image_key], rng)
    image = image_ops.convert_channels(image, self.shape[2]).astype(np.float32) / 255.0
    for op in self.ops:
      image = op(image, rng, cfg)
    return {"image": image_ops.normalize(image, cfg.mean, cfg.std),
            "label": np.int32(element[cfg.label_key] if cfg.label_key else 0)}


class _NoisyLabels:
  """map_with_index on the full split: the index (mod the split size) is the example's position.

  Indices past the end arrive here because grain's repeat reads its parent modulo its length.
  """

  def __init__(self, cfg, noise: label_noise.LabelNoise):
    self.key = cfg.label_key
    self.noise = noise

  def __call__(self, index: int, element: dict[str, Any]) -> dict[str, Any]:
    index %= len(self.noise.is_noisy)
    return dict(element, **{self.key: self.noise(index, element[self.key])})


class RepeatedAugmentation(grain.MapDataset):
  """DeiT's repeated augmentation (its RASampler) on the global stream of a shuffled, repeated
  `parent` of `n` examples per epoch.

  Epoch e of this stream is the parent's epoch e (a fresh permutation) cut to its first
  ceil(m / r) examples, each repeated r times in a row and the whole cut to m = (n // 256) * 256
  positions, the epoch length DeiT keeps. Augmentation keyed by stream position then differs
  between the copies. DeiT deals the copies to r different replicas of one step; in the
  process-independent order (common.data.process_order) they are consecutive rows of the same
  global batch, so every step trains on the same examples as DeiT's.
  """

  def __init__(self, parent: grain.MapDataset, *, n: int, repeats: int):
    super().__init__(parent)
    self._n, self._repeats, self._epoch = n, repeats, (n // 256) * 256
    if not self._epoch:
      raise ValueError(f"config.data.repeated_aug={repeats} needs at least 256 training "
                       f"examples (DeiT's epoch is a multiple of 256); the split has {n}. "
                       "Set repeated_aug=0.")
    self._length = (len(parent) // n) * self._epoch

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    epoch, position = divmod(index, self._epoch)
    return self._parent[epoch * self._n + position // self._repeats]

  def __str__(self) -> str:
    return f"RepeatedAugmentation(repeats={self._repeats}, epoch={self._epoch} of {self._n})"


def _read_options(cfg) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=cfg.read_threads, prefetch_buffer_size=cfg.prefetch)


def train_dataset(cfg, *, seed: int, process_index: int, process_count: int,
                  batch_size: int) -> grain.IterDataset:
  """Shuffle (reseeded each epoch) -> repeat [-> repeated augmentation] -> augment -> this
  process's share -> batch.

  One global stream, shuffled with the run seed and augmented with randomness keyed by the
  global position, of which each process takes its block of every global batch
  (common.data.process_order): the global batch at each step is the same whatever the process
  count. Everything up to batching is a MapDataset, so worker processes (which slice the
  dataset of batches) and threads cannot change what any batch holds.
  """
  raw = cfg.preprocess == "imagenet"
  source, info = sources.open_split(cfg, cfg.train_split, raw_images=raw)
  if not len(source):
    raise ValueError(f"{cfg.name!r} split {cfg.train_split!r} has no examples to train on.")
  ds = grain.MapDataset.source(source)
  if cfg.label_noise:
    noise = label_noise.LabelNoise(len(source), cfg.label_noise, cfg.label_noise_seed,
                                   num_classes(cfg, info))
    ds = ds.map_with_index(_NoisyLabels(cfg, noise))
  ds = ds.shuffle(seed=rng_lib.derive_seed(seed, "shuffle")).repeat()
  if cfg.get("repeated_aug", 0):
    ds = RepeatedAugmentation(ds, n=len(source), repeats=cfg.repeated_aug)
  ds = ds.random_map(ImageTransform(cfg, info, train=True),
                     seed=rng_lib.derive_seed(seed, "augment"))
  ds = process_order.local_share(ds, process_index=process_index, process_count=process_count,
                                 local_batch=batch_size)
  ds = ds.batch(batch_size, drop_remainder=True)
  return workers.maybe_workers(ds.to_iter_dataset(_read_options(cfg)), cfg.num_workers)


class _EvalExample:
  """Position j of this process's padded shard -> example with 'mask' (0 for padding)."""

  def __init__(self, cfg, info, source, process_index: int, process_count: int):
    self.transform = ImageTransform(cfg, info, train=False)
    self.source = source
    self.process_index = process_index
    self.process_count = process_count
    self.count = len(range(process_index, len(source), process_count))

  def __call__(self, j: int) -> dict[str, np.ndarray]:
    if j < self.count:
      out = self.transform(self.source[self.process_index + j * self.process_count])
      return dict(out, mask=np.float32(1.0))
    return {"image": np.zeros(self.transform.shape, np.float32), "label": np.int32(0),
            "mask": np.float32(0.0)}


def eval_dataset(cfg, *, split: str, process_index: int, process_count: int,
                 batch_size: int) -> grain.IterDataset:
  """Examples process_index::process_count in order, padded so every process yields the same
  number of batches (multi-host steps must stay in lockstep)."""
  raw = cfg.preprocess == "imagenet"
  source, info = sources.open_split(cfg, split, raw_images=raw)
  per_process = math.ceil(len(source) / process_count)
  num_batches = math.ceil(per_process / batch_size)
  ds = grain.MapDataset.range(num_batches * batch_size).map(
      _EvalExample(cfg, info, source, process_index, process_count))
  ds = ds.batch(batch_size)
  return workers.maybe_workers(ds.to_iter_dataset(_read_options(cfg)), cfg.num_workers)
