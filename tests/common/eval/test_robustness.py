"""Accuracy under Gaussian noise: deterministic, sigma 0 is clean accuracy, matches numpy."""
import jax
import numpy as np
from flax import nnx

from common.eval import robustness


def test_deterministic_and_matches_numpy_with_the_same_noise(model, ctx):
  evaluator = robustness.GaussianNoiseEvaluator("test", sigmas=(0.0, 0.5), seed=3)
  got = evaluator(model, ctx)
  assert got == evaluator(model, ctx)
  assert not nnx.pop(model, nnx.Intermediate)
  images, labels = ctx.splits["test"]
  clean = (model.numpy_forward(images)[0].argmax(-1) == labels).mean()
  np.testing.assert_allclose(got["test/gaussian_noise/sigma_0/accuracy"], clean)
  correct, batch = [], ctx.batch_size

  @jax.jit  # one compile for all batches (eager random ops compile per call site)
  def noise_for(batch_index):
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(3), batch_index), 1)
    return jax.random.normal(key, (batch,) + images.shape[1:])

  for i, start in enumerate(range(0, len(labels), batch)):
    noise = np.asarray(noise_for(np.int32(i)))
    x = images[start:start + batch]
    logits = model.numpy_forward(x + 0.5 * noise[:len(x)])[0]
    correct.extend(logits.argmax(-1) == labels[start:start + batch])
  np.testing.assert_allclose(got["test/gaussian_noise/sigma_0.5/accuracy"], np.mean(correct),
                             rtol=1e-6)
  np.testing.assert_allclose(got["test/gaussian_noise/mean_accuracy"],
                             (clean + np.mean(correct)) / 2, rtol=1e-6)
