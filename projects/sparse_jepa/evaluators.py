"""The SparseJEPA evaluators, registered by name for `config.eval.evaluators`
(common/eval/registry.py, which also holds the shared 'loss'):

  'loss'            the task's loss and metrics (I-JEPA smooth-L1, SparseJEPA penalty parts) on
                    config.eval.splits, with fixed evaluation masks (common.eval.task_loss).
  'linear_probe'    frozen encoder, average-pooled features, closed-form ridge classifier fit on
                    config.eval.probe_train_split and scored on config.eval.splits:
                    train_accuracy, <split>/accuracy, l2 (probes.ridge_classifier), and
                    <split>/feature_std (mean per-dimension std of the features: collapse check).
  'lowlevel_probe'  the same features, ridge regression of each image's pixel mean and pixel std
                    (low-level statistics a semantic encoder may discard): <split>/r2/pixel_mean,
                    <split>/r2/pixel_std, <split>/r2/mean (probes.ridge_regression).
  'latent_sparsity' (SparseJEPA) the SparsityHead on the online encoder's full-image tokens
                    (z = mu), pooled over a whole split: active_units, active_groups_per_example,
                    pruned_blocks, dead_groups, total_correlation (SparsityHead.metrics).

Probe settings in `config.eval`: probe_encoder ('target': the EMA target encoder, as the I-JEPA
paper evaluates; 'context': the online encoder), probe_train_split ('train'), probe_max_batches
(batches of the probe training split, 0 = all; config.eval.max_batches caps the test splits).
"""
from __future__ import annotations

import weakref

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from common.eval import registry
from projects.sparse_jepa import probes

PROBE_ENCODERS = ("target", "context")
LOWLEVEL_TARGETS = ("pixel_mean", "pixel_std")


def _setting(config, name: str, default):
  return config.eval.get(name, default)


def image_batches(ctx, split: str, max_batches: int | None):
  """Padded evaluation batches of `split` as global arrays, without masks (the probes need none)."""
  it = ctx.task.eval_data(split, process_index=jax.process_index(),
                          process_count=jax.process_count(),
                          batch_size=ctx.config.eval.batch_size // jax.process_count(),
                          with_masks=False)
  put = ctx.put_batch or (lambda b: jax.tree.map(jnp.asarray, b))
  for i, batch in enumerate(it):
    if max_batches and i >= max_batches:
      break
    yield put(batch)


class Features:
  """Average-pooled encoder features, labels and pixel statistics of a split, cached per model.

  The probes share one extraction: the trainer hands every evaluator the same model object in one
  evaluation, so the cache is keyed on that object. It is held by a weak reference: a strong one
  would keep a copy of the weights alive between evaluations.
  """

  def __init__(self, encoder: str):
    if encoder not in PROBE_ENCODERS:
      raise ValueError(f"config.eval.probe_encoder={encoder!r}; allowed: {PROBE_ENCODERS}.")
    self.encoder = encoder
    self._model = lambda: None
    self._cache: dict[tuple[str, int], dict[str, np.ndarray]] = {}

    @nnx.jit
    def extract(model, batch):
      enc = model.target_encoder if self.encoder == "target" else model.encoder
      image = batch["image"]
      return {"features": enc(image).mean(axis=1).astype(jnp.float32),
              "label": batch["label"], "mask": batch["mask"],
              "pixel_mean": image.mean(axis=(1, 2, 3)), "pixel_std": image.std(axis=(1, 2, 3))}

    self._extract = extract

  def __call__(self, model: nnx.Module, ctx, split: str, max_batches: int) -> dict[str, np.ndarray]:
    if model is not self._model():
      self._model, self._cache = weakref.ref(model), {}
    key = (split, max_batches)
    if key not in self._cache:
      parts: dict[str, list[np.ndarray]] = {}
      for batch in image_batches(ctx, split, max_batches):
        for k, v in jax.device_get(self._extract(model, batch)).items():
          parts.setdefault(k, []).append(np.asarray(v))
      if not parts:
        raise ValueError(f"split {split!r} yielded no batches to probe.")
      out = {k: np.concatenate(v) for k, v in parts.items()}
      keep = out.pop("mask") > 0
      self._cache[key] = {k: v[keep] for k, v in out.items()}
    return self._cache[key]


class LinearProbe:
  """Ridge classifier on frozen, average-pooled features (see the module docstring)."""

  def __init__(self, features: Features, config: ml_collections.ConfigDict):
    self.features, self.config = features, config
    self.num_classes = 0  # read from the dataset's info at the first call, not at build time

  def __call__(self, model, ctx) -> dict[str, float]:
    e = self.config.eval
    if not self.num_classes:
      from common.data import pipeline  # pylint: disable=g-import-not-at-top
      self.num_classes = pipeline.num_classes(self.config.data)
    train = self.features(model, ctx, _setting(self.config, "probe_train_split", "train"),
                          _setting(self.config, "probe_max_batches", 0))
    out: dict[str, float] = {}
    for split in e.splits:
      test = self.features(model, ctx, split, e.get("max_batches", 0))
      res = probes.ridge_classifier(train["features"], train["label"], test["features"],
                                    test["label"], num_classes=self.num_classes)
      out.update({"train_accuracy": res["train_accuracy"], f"{split}/accuracy":
                  res["test_accuracy"], "l2": res["l2"],
                  # Collapse check: a JEPA can drive its loss to ~0 with features that no
                  # longer vary between images; this is their mean per-dimension std.
                  f"{split}/feature_std": float(np.mean(np.std(test["features"], axis=0)))})
    return out


class LowLevelProbe:
  """Ridge regression of pixel mean and std from the features; R^2 per split."""

  def __init__(self, features: Features, config: ml_collections.ConfigDict):
    self.features, self.config = features, config

  def __call__(self, model, ctx) -> dict[str, float]:
    e = self.config.eval
    train = self.features(model, ctx, _setting(self.config, "probe_train_split", "train"),
                          _setting(self.config, "probe_max_batches", 0))
    targets = lambda d: np.stack([d[t] for t in LOWLEVEL_TARGETS], axis=1)
    out: dict[str, float] = {}
    for split in e.splits:
      test = self.features(model, ctx, split, e.get("max_batches", 0))
      res = probes.ridge_regression(train["features"], targets(train), test["features"],
                                    targets(test))
      for name, r2 in zip(LOWLEVEL_TARGETS, res["test_r2"]):
        out[f"{split}/r2/{name}"] = float(r2)
      out[f"{split}/r2/mean"] = float(np.nanmean(res["test_r2"]))
    return out


class LatentSparsity:
  """SparsityHead metrics over whole splits (one covariance for the total correlation)."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config

    @nnx.jit
    def latents(model, batch):
      emb = model.encoder(batch["image"])
      if model.head.config.pooling == "mean":
        emb = emb.mean(axis=1)
      out = model.head(emb)
      return {k: out[k] for k in ("mu", "logvar", "kl_per_unit")}, batch["mask"]

    self._latents = latents

  def __call__(self, model, ctx) -> dict[str, float]:
    if getattr(model, "head", None) is None:
      raise ValueError("evaluator 'latent_sparsity' needs config.model.sparse=True (the model "
                       "has no SparsityHead).")
    k = model.head.config.latent_dim
    out: dict[str, float] = {}
    for split in self.config.eval.splits:
      parts: dict[str, list[np.ndarray]] = {}
      for batch in image_batches(ctx, split, self.config.eval.get("max_batches", 0)):
        lat, mask = jax.device_get(self._latents(model, batch))
        keep = np.asarray(mask) > 0
        for name, v in lat.items():
          parts.setdefault(name, []).append(np.asarray(v)[keep].reshape(-1, k))
      merged = {name: jnp.asarray(np.concatenate(v)) for name, v in parts.items()}
      for name, v in model.head.metrics(merged).items():
        out[f"{split}/{name}"] = float(v)
    return out


def _features(ctx: registry.BuildContext) -> Features:
  """The probes' one feature extraction, shared within a run."""
  if "probe_features" not in ctx.shared:
    ctx.shared["probe_features"] = Features(_setting(ctx.config, "probe_encoder", "target"))
  return ctx.shared["probe_features"]


def _latent_sparsity(ctx: registry.BuildContext) -> LatentSparsity:
  if not ctx.config.model.sparse:
    raise ValueError("config.eval.evaluators has 'latent_sparsity', which needs "
                     "config.model.sparse=True (I-JEPA has no SparsityHead).")
  return LatentSparsity(ctx.config)


registry.register("linear_probe", lambda ctx: LinearProbe(_features(ctx), ctx.config))
registry.register("lowlevel_probe", lambda ctx: LowLevelProbe(_features(ctx), ctx.config))
registry.register("latent_sparsity", _latent_sparsity)
