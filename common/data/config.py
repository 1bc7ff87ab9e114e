"""The fields of `config.data`, with defaults: `image_data_config(...)` / `text_data_config(...)`.

Project configs do `c.data = image_data_config("mnist5k", image_size=28)` and may override any
field afterwards (or on the command line: `--config.data.seq_len=512`). A hand-written
ConfigDict with only some fields also works: `resolve` fills the rest with these defaults and
infers `kind` (every entry point resolves first). Fields use '' and 0 for "unset/automatic"
instead of None, so command-line overrides keep a type.

Common fields
  name            a demo dataset of common/data/builders (REGISTRY), built on first use:
                  'mnist5k' | 'digits' | 'mnist_pairs' | 'pystdlib_text' | 'chess_games' |
                  'text_domains' (the last two need Debian's stockfish) | 'chess_lichess' and
                  'text_domains_colab' (downloaded files in manual_dir), or
                  'tfds:<tfds name>' for a prepared TFDS dataset, e.g. 'tfds:imagenet2012',
                  'tfds:cifar100', 'tfds:c4/en:3.1.0', 'tfds:openwebtext'.
  kind            'image' | 'text' | 'recall' (set by the helper; must match a demo dataset's
                  kind).
  data_dir        '' -> $SPARSE_DATA_DIR or ~/.cache/sparse_monorepo (see common.data.paths).
                  For 'tfds:' names without a data_dir, ~/tensorflow_datasets (or
                  $TFDS_DATA_DIR) is searched too.
  manual_dir      '' -> <data_dir>/downloads/manual; where manually downloaded archives are.
  prepare         False; True generates a missing 'tfds:' dataset in-process (manual datasets).
  train_split     'train'. TFDS slicing ('train[:90%]') is allowed.
  eval_split      'test' for images, 'validation' for text (the split Task evaluates by default).
  num_workers     0: no worker processes (deterministic either way; results do not depend on it).
  read_threads    2: threads reading/transforming ahead of the consumer in each process.
  prefetch        2: batches (images) buffered ahead by those threads.

Image fields (batches: 'image' float32 [B,H,W,C], 'label' int32 [B])
  image_size      0 -> the dataset's native size; else resize to image_size x image_size.
  channels        0 -> native; 1 or 3 (grey <-> RGB conversion).
  mean, std       per-channel (or 1-tuple) normalisation applied to pixels scaled to [0, 1].
  augment         tuple of per-example train ops: 'inception_crop' (random-resized-crop of the
                  decoded image to image_size; always runs first, before resizing), then, in
                  order, registered ops on the resized image: 'random_crop' (zero-pad by
                  crop_padding, crop back), 'flip' (alias 'flip_lr'; horizontal, p=1/2),
                  'noise' (Gaussian, noise_std, clipped to [0, 1]); extend with
                  common.data.augment.register. ImageNet default: ('inception_crop', 'flip').
  crop_padding    0 -> image_size // 8 (4 for 32x32, as in the CIFAR recipe).
  noise_std       0.1 (in [0, 1] pixel units).
  repeated_aug    0: off; r >= 2: DeiT's repeated augmentation (RASampler; the svit and biformer
                  ImageNet recipes use r = 3, their official default): each epoch takes the
                  first third (1 / r) of a fresh permutation and shows every example r times
                  in a row, each copy augmented apart, in (n // 256) * 256 positions.
  label_noise     0.0; fraction of TRAIN labels replaced by a uniformly random other class.
  label_noise_seed 0; which examples and which wrong labels (fixed across training seeds, so
                  several runs see the same corrupted dataset).
  num_classes     0 -> read from the dataset's ClassLabel; if set, must match it.
  image_key, label_key  'image', 'label': feature names in the TFDS dataset; label_key=''
                  reads no label (unlabelled sets such as downsampled_imagenet): 'label' is 0.
  preprocess      'simple' (decoded arrays: resize to image_size, convert channels) |
                  'imagenet' (decode JPEG bytes; resize the shorter side to
                  image_size / crop_fraction and centre-crop, unless 'inception_crop' crops).
  crop_fraction   0.875: eval centre crop covers this fraction of the resized image (imagenet).
  interpolation   'bilinear' | 'bicubic': the resize filter of the imagenet path and inception crop.
  crop_scale      (0.08, 1.0): area fraction range of 'inception_crop' (I-JEPA uses (0.3, 1.0)).

Text fields
  task_format     'lm' -> 'inputs', 'targets' int32 [B,T], 'weights' float32 [B,T]: documents
                  tokenized, EOS appended, concatenated and cut into seq_len + 1 tokens.
                  'span_corruption' -> T5 span corruption: 'encoder_input_tokens' [B,Te],
                  'decoder_input_tokens', 'decoder_target_tokens' [B,Td],
                  'decoder_loss_weights' float32 [B,Td].
  tokenizer       'bytes' | 'sentencepiece:<vocab size>' | 'sentencepiece:<path>' | 'chess'
                  (chess-GPT's 32 characters; no EOS: every game starts with ';').
  tokenizer_train_docs  10000: documents of train_split used to train 'sentencepiece:<N>'.
  extra_ids       sentinel ids at the top of the vocabulary: 0 for 'lm', 100 for
                  'span_corruption' (T5).
  text_key        'text'.
  seq_len         256 ('lm').
  inputs_length   512 ('span_corruption': encoder length Te, EOS included).
  targets_length  0 -> computed from inputs_length as T5 does (114 for 512 at the defaults).
  noise_density   0.15; mean_noise_span_length 3.0 (T5 defaults).

Recall fields (name 'recall', kind 'recall': synthetic associative recall generated on the fly,
common.data.recall; 'lm' batches plus 'distance' int32 [B,T]; splits 'train' and 'validation')
  seq_len 2048, num_keys 16, num_values 8, num_fillers 16: sequence length and vocabulary.
  near_max 64, far_min 512, near_fraction 0.25: a key's query follows its store by 2..near_max
                  tokens (near) or far_min or more (far).
  eval_examples   256: fixed validation sequences (the same for every run seed).

Superposition fields (name 'superposition', kind 'superposition': sparse synthetic features in
superposition, common.data.superposition; batches {'x', 'features'}; splits 'train' and
'validation')
  num_features 128, input_dim 32: F features along fixed random directions of a d-dim space.
  density 0.03: probability that a feature is on; directions_seed 0: the directions.
  eval_examples   8192: fixed validation examples (the same for every run seed).
"""
from __future__ import annotations

from typing import Any

import ml_collections

COMMON_DEFAULTS: dict[str, Any] = {
    "name": "",
    "kind": "",
    "data_dir": "",
    "manual_dir": "",
    "prepare": False,
    "train_split": "train",
    "eval_split": "test",
    "num_workers": 0,
    "read_threads": 2,
    "prefetch": 2,
}

IMAGE_DEFAULTS: dict[str, Any] = {
    "image_size": 0,
    "channels": 0,
    "mean": (0.5,),
    "std": (0.5,),
    "augment": (),
    "crop_padding": 0,
    "noise_std": 0.1,
    "repeated_aug": 0,
    "label_noise": 0.0,
    "label_noise_seed": 0,
    "num_classes": 0,
    "image_key": "image",
    "label_key": "label",
    "preprocess": "simple",
    "crop_fraction": 0.875,
    "interpolation": "bilinear",
    "crop_scale": (0.08, 1.0),
}

TEXT_DEFAULTS: dict[str, Any] = {
    "task_format": "lm",
    "tokenizer": "bytes",
    "tokenizer_train_docs": 10_000,
    "extra_ids": 0,
    "text_key": "text",
    "seq_len": 256,
    "inputs_length": 512,
    "targets_length": 0,
    "noise_density": 0.15,
    "mean_noise_span_length": 3.0,
}

RECALL_DEFAULTS: dict[str, Any] = {
    "seq_len": 2048,
    "num_keys": 16,
    "num_values": 8,
    "num_fillers": 16,
    "near_max": 64,
    "far_min": 512,
    "near_fraction": 0.25,
    "eval_examples": 256,
}

SUPERPOSITION_DEFAULTS: dict[str, Any] = {
    "num_features": 128,
    "input_dim": 32,
    "density": 0.03,
    "directions_seed": 0,
    "eval_examples": 8192,
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
T5_EXTRA_IDS = 100
KINDS = ("image", "text", "recall", "superposition")


def _defaults(name: str, kind: str, values: dict[str, Any]) -> dict[str, Any]:
  """Every field of `kind` with the defaults that suit `name` and the given values."""
  if kind == "image":
    defaults = dict(COMMON_DEFAULTS, **IMAGE_DEFAULTS)
    if name.startswith("tfds:imagenet"):
      defaults.update(preprocess="imagenet", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                      image_size=224, channels=3, eval_split="validation",
                      augment=("inception_crop", "flip"))
  elif kind == "recall":
    defaults = dict(COMMON_DEFAULTS, **RECALL_DEFAULTS, eval_split="validation")
  elif kind == "superposition":
    defaults = dict(COMMON_DEFAULTS, **SUPERPOSITION_DEFAULTS, eval_split="validation")
  else:
    defaults = dict(COMMON_DEFAULTS, **TEXT_DEFAULTS, eval_split="validation")
    if values.get("task_format") == "span_corruption":
      defaults["extra_ids"] = T5_EXTRA_IDS
  defaults.update(name=name, kind=kind)
  return defaults


def _infer_kind(name: str, values: dict[str, Any]) -> str:
  if values.get("kind"):
    if values["kind"] not in KINDS:
      raise ValueError(f"config.data.kind={values['kind']!r} is not allowed: one of {KINDS}.")
    return values["kind"]
  if name in ("recall", "superposition"):   # the synthetic kinds are named after themselves
    return name
  if name and not name.startswith("tfds:"):
    from common.data import builders  # pylint: disable=g-import-not-at-top
    if name in builders.REGISTRY:
      return builders.REGISTRY[name].kind
  image_only = set(IMAGE_DEFAULTS) & set(values)
  text_only = set(TEXT_DEFAULTS) & set(values)
  if image_only and not text_only:
    return "image"
  if text_only and not image_only:
    return "text"
  raise ValueError(f"config.data.kind={values.get('kind', '')!r} is not allowed: set 'image' or "
                   f"'text' for dataset {name!r} (image_data_config / text_data_config do).")


def _make(values: dict[str, Any]) -> ml_collections.ConfigDict:
  name = values.get("name", "")
  kind = _infer_kind(name, values)
  defaults = _defaults(name, kind, values)
  unknown = sorted(set(values) - set(defaults))
  if unknown:
    raise ValueError(f"config.data has unknown field(s) {unknown} for kind={kind!r}; "
                     f"allowed: {sorted(defaults)}.")
  merged = dict(defaults)
  merged.update(values)
  # Lists (from callers or JSON) become tuples, the type the defaults declare.
  merged = {k: tuple(v) if isinstance(v, list) else v for k, v in merged.items()}
  return ml_collections.ConfigDict(merged)


def resolve(data_config) -> ml_collections.ConfigDict:
  """A complete copy of `data_config`: missing fields take their defaults, `kind` is inferred.

  Project configs may write `config.data` by hand with only the fields they change; every
  entry point resolves it first, so those configs behave like the helpers' output.
  """
  if data_config is None or not hasattr(data_config, "keys"):
    raise ValueError(f"config.data={data_config!r} is not allowed: expected a ConfigDict, e.g. "
                     "from common.data.config.image_data_config(...) or text_data_config(...).")
  values = (data_config.to_dict() if hasattr(data_config, "to_dict")
            else {k: data_config[k] for k in data_config.keys()})
  return _make(values)


def image_data_config(name: str = "mnist5k", **overrides) -> ml_collections.ConfigDict:
  """A data config for image classification; see the module docstring for every field."""
  return _make(dict(overrides, name=name, kind="image"))


def text_data_config(name: str = "pystdlib_text", **overrides) -> ml_collections.ConfigDict:
  """A data config for language modelling or span corruption; see the module docstring."""
  return _make(dict(overrides, name=name, kind="text"))


def superposition_data_config(**overrides) -> ml_collections.ConfigDict:
  """Sparse synthetic features in superposition (common.data.superposition)."""
  return _make(dict(overrides, name="superposition", kind="superposition"))


def recall_data_config(**overrides) -> ml_collections.ConfigDict:
  """The synthetic associative-recall stream (common.data.recall); see the module docstring."""
  return _make(dict(overrides, name="recall", kind="recall"))
