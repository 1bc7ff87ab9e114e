"""Accuracy under corruptions: deterministic, clean levels give the clean accuracy, each
corruption matches numpy, the means aggregate, and a bad name or level is one clear error."""
import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

from common.eval import registry, robustness


def test_deterministic_and_matches_numpy_with_the_same_noise(model, ctx):
  evaluator = robustness.CorruptionEvaluator(
      "test", corruptions={"gaussian_noise": (0.0, 0.5)}, seed=3)
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


def _blur_numpy(x, sigma):
  r = int(np.ceil(3 * sigma))
  taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
  taps /= taps.sum()
  for axis in (1, 2):
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    xp = np.pad(x, pad, mode="edge")
    x = sum(t * np.take(xp, np.arange(i, i + x.shape[axis]), axis=axis)
            for i, t in enumerate(taps))
  return x


def test_each_corruption_matches_numpy_and_clean_levels_are_identity():
  x = np.random.RandomState(0).randn(2, 5, 6, 3).astype(np.float32)
  key = jax.random.key(1)
  run = lambda name, level: np.asarray(robustness.CORRUPTIONS[name][0](x, key, level))
  for name, clean in (("gaussian_noise", 0.0), ("impulse_noise", 0.0), ("gaussian_blur", 0.0),
                      ("contrast", 1.0)):
    np.testing.assert_allclose(run(name, clean), x, rtol=1e-6, err_msg=name)
  np.testing.assert_allclose(run("gaussian_blur", 1.2), _blur_numpy(x.astype(np.float64), 1.2),
                             rtol=1e-5, atol=1e-6)
  m = x.mean(axis=(1, 2, 3), keepdims=True)
  np.testing.assert_allclose(run("contrast", 0.2), m + 0.2 * (x - m), rtol=1e-5, atol=1e-6)
  hit = run("impulse_noise", 0.5)
  changed = (hit != x).any(-1)
  assert 0.2 < changed.mean() < 0.8
  lo, hi = x.min(axis=(1, 2, 3)), x.max(axis=(1, 2, 3))
  for b in range(2):   # a hit pixel has every channel at the image's minimum, or at its maximum
    pepper, salt = (hit[b][changed[b]] == lo[b]).all(-1), (hit[b][changed[b]] == hi[b]).all(-1)
    assert (pepper | salt).all() and pepper.any() and salt.any()


def test_means_over_levels_and_corruptions(model, ctx):
  levels = {"contrast": (1.0, 0.0), "impulse_noise": (0.0,)}
  got = robustness.CorruptionEvaluator("test", corruptions=levels, seed=0)(model, ctx)
  clean = got["test/impulse_noise/p_0/accuracy"]
  assert got["test/contrast/c_1/accuracy"] == clean
  assert got["test/contrast/mean_accuracy"] == pytest.approx(
      (clean + got["test/contrast/c_0/accuracy"]) / 2)
  assert got["test/corruptions/mean_accuracy"] == pytest.approx(
      (got["test/contrast/mean_accuracy"] + clean) / 2)


@pytest.mark.parametrize("corruptions, match", [
    ({"fog": (1.0,)}, "unknown \\['fog'\\]"),
    ({"contrast": ()}, "without levels \\['contrast'\\]"),
    ({"impulse_noise": (1.5,)}, "at most 1"),
    ({"gaussian_noise": (-0.1,)}, "must be >= 0"),
])
def test_bad_corruption_is_one_clear_error(corruptions, match):
  with pytest.raises(ValueError, match=match):
    robustness.CorruptionEvaluator("test", corruptions=corruptions)


def test_a_config_saved_before_corruptions_existed_still_builds():
  """Checkpoints saved with eval.sigmas (Gaussian noise only) keep their evaluation."""
  config = ml_collections.ConfigDict({"eval": {"sigmas": (0.25, 1.0)}})
  assert registry._corruptions(config) == {"gaussian_noise": (0.25, 1.0)}
  config.eval.corruptions = {"contrast": (0.5,)}
  assert dict(registry._corruptions(config)) == {"contrast": (0.5,)}
