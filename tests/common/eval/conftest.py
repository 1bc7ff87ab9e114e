"""A fake EvalContext and a tiny classifier whose outputs numpy can recompute.

The fake context serves a fixed synthetic split in batches of 4 with a padded last batch
(mask 0 on the padding rows, whose images and labels are garbage on purpose), so every
evaluator test also checks that padding never counts.
"""
import types

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.layers import mlp

NUM_REAL = 10
BATCH = 4
NUM_CLASSES = 7


class TinyClassifier(nnx.Module):
  """flatten -> two ReLU MLP layers (sowing act_nonzero) -> linear head."""

  def __init__(self, rngs):
    self.layers = nnx.List([mlp.Mlp(12, 16, bias_init=nnx.initializers.normal(0.5), rngs=rngs)
                            for _ in range(2)])
    self.head = nnx.Linear(12, NUM_CLASSES, rngs=rngs)

  def __call__(self, images):
    x = images.reshape(images.shape[0], -1)
    for layer in self.layers:
      x = x + layer(x)
    return self.head(x)

  def numpy_forward(self, images):
    """The same computation in numpy: (logits, per-layer nonzero fraction per example)."""
    x = images.reshape(images.shape[0], -1).astype(np.float64)
    fractions = []
    for layer in self.layers:
      h = np.maximum(x @ np.asarray(layer.wi.kernel[...]) + np.asarray(layer.wi.bias[...]), 0)
      fractions.append((h != 0).mean(-1))
      x = x + h @ np.asarray(layer.wo.kernel[...]) + np.asarray(layer.wo.bias[...])
    return x @ np.asarray(self.head.kernel[...]) + np.asarray(self.head.bias[...]), fractions


class FakeContext:
  """Implements the part of common.eval.context.EvalContext that evaluators use."""

  def __init__(self, splits):
    self.splits = splits
    self.batch_size = BATCH
    self.config = types.SimpleNamespace(eval=types.SimpleNamespace(max_batches=0))
    self.calls = []

  def batches(self, split, *, max_batches=None):
    self.calls.append((split, max_batches))
    images, labels = self.splits[split]
    n = len(labels)
    for i, start in enumerate(range(0, n, BATCH)):
      if max_batches is not None and i >= max_batches:
        return
      img, lab = images[start:start + BATCH], labels[start:start + BATCH]
      pad = BATCH - len(lab)
      mask = np.concatenate([np.ones(len(lab)), np.zeros(pad)]).astype(np.float32)
      img = np.concatenate([img, np.full((pad,) + img.shape[1:], 7.0, np.float32)])
      lab = np.concatenate([lab, np.zeros(pad, np.int32)])
      yield {"image": jnp.asarray(img), "label": jnp.asarray(lab), "mask": jnp.asarray(mask)}


def _split(seed):
  rs = np.random.RandomState(seed)
  images = rs.randn(NUM_REAL, 2, 2, 3).astype(np.float32)
  labels = rs.randint(0, NUM_CLASSES, NUM_REAL).astype(np.int32)
  return images, labels


@pytest.fixture(scope="package")
def model():
  return TinyClassifier(nnx.Rngs(0))


@pytest.fixture(scope="package")
def ctx():
  return FakeContext({"train": _split(1), "test": _split(2)})
