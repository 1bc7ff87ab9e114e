"""The DeiT-recipe augmentations: RandAugment, random erasing (per example) and Mixup/CutMix."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from common.data import augment, augment_imagenet as aug, checks, mixup

CFG = ml_collections.ConfigDict(dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)))


def _image(seed=0, shape=(32, 32, 3)):
  return np.random.default_rng(seed).random(shape).astype(np.float32)


# --- RandAugment ----------------------------------------------------------------------------

def test_recipe_spec_parses_like_timm():
  ra = aug.RandAugment("rand-m9-mstd0.5-inc1")
  assert (ra.magnitude, ra.num_ops, ra.magnitude_std, ra.prob) == (9.0, 2, 0.5, 0.5)
  assert ra.ops == aug.RAND_INCREASING_TRANSFORMS and len(ra.ops) == 15
  assert "PosterizeIncreasing" in ra.ops and "Posterize" not in ra.ops
  assert aug.RandAugment("rand-m7-n3").ops == aug.RAND_TRANSFORMS


@pytest.mark.parametrize("spec", ["auto-m9", "rand-q3", "rand-mX"])
def test_bad_spec_names_the_part(spec):
  with pytest.raises(ValueError, match="randaugment spec"):
    aug.RandAugment(spec)


@pytest.mark.parametrize("shape", [(32, 32, 3), (28, 28, 1)])
def test_randaugment_is_deterministic_per_example_rng(shape):
  op = augment.get("randaugment")
  image = _image(1, shape)
  outs = [op(image, np.random.default_rng(s), CFG) for s in (5, 5, 6, 7, 8)]
  assert all(o.shape == shape and o.dtype == np.float32 for o in outs)
  assert all(0.0 <= o.min() and o.max() <= 1.0 for o in outs)
  np.testing.assert_array_equal(outs[0], outs[1])
  assert any(not np.array_equal(outs[0], o) for o in outs[2:])


def test_single_ops_match_their_definition():
  image = np.round(_image(2) * 255) / 255
  ra = aug.RandAugment("rand-m9-n1-p1")
  ra.ops = ("Invert",)
  np.testing.assert_allclose(ra(image, np.random.default_rng(0), CFG), 1.0 - image, atol=1e-6)
  ra.ops = ("SolarizeIncreasing",)  # m9: threshold 256 - int(0.9 * 256) = 26
  ra.magnitude_std = 0.0
  out = ra(image, np.random.default_rng(0), CFG)
  pixels = np.rint(image * 255)
  np.testing.assert_allclose(out * 255, np.where(pixels >= 26, 255 - pixels, pixels), atol=1e-3)


def test_op_probability_and_magnitude_clip():
  ra = aug.RandAugment("rand-m9-mstd100-p0")
  image = _image(3)
  np.testing.assert_allclose(ra(image, np.random.default_rng(0), CFG), image, atol=1 / 510)
  rng = np.random.default_rng(0)
  assert all(0.0 <= ra._magnitude(rng) <= 10.0 for _ in range(50))


# --- random erasing -------------------------------------------------------------------------

def test_random_erasing_box_is_normal_noise_after_normalising():
  op = aug.make_random_erasing(1.0)
  image = _image(4, (64, 64, 3))
  out = op(image, np.random.default_rng(0), CFG)
  changed = np.any(out != image, axis=-1)
  ys, xs = np.nonzero(changed)
  box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
  assert changed[box].all()  # one rectangle
  area = changed.sum() / changed.size
  assert 0.015 <= area <= 0.34
  z = (out[box] - np.asarray(CFG.mean)) / np.asarray(CFG.std)
  assert abs(z.mean()) < 0.3 and 0.7 < z.std() < 1.3
  np.testing.assert_array_equal(out[~changed], image[~changed])


def test_random_erasing_probability():
  image = _image(5)
  never = aug.make_random_erasing(0.0)
  assert never(image, np.random.default_rng(0), CFG) is image
  recipe = augment.get("random_erasing")
  hits = sum(not np.array_equal(recipe(image, np.random.default_rng(s), CFG), image)
             for s in range(400))
  assert 60 <= hits <= 140  # p = 0.25
  with pytest.raises(ValueError, match="probability"):
    aug.make_random_erasing(1.5)


def test_data_config_accepts_the_new_ops():
  cfg = checks.validate(ml_collections.ConfigDict(dict(
      name="mnist5k", kind="image", augment=("flip", "randaugment", "random_erasing"))))
  assert tuple(cfg.augment) == ("flip", "randaugment", "random_erasing")


# --- Mixup / CutMix -------------------------------------------------------------------------

def _batch(b=8, h=16, w=12):
  x = jax.random.normal(jax.random.key(0), (b, h, w, 3))
  return x, jnp.arange(b) % 5


def test_label_smoothing_only_when_mixing_is_off():
  x, y = _batch()
  cfg = mixup.MixupConfig(prob=0.0, label_smoothing=0.1)
  images, targets = mixup.mix_batch(jax.random.key(1), x, y, num_classes=5, config=cfg)
  np.testing.assert_array_equal(images, x)
  np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(targets[np.arange(8), y], 0.9 + 0.02, rtol=1e-6)
  np.testing.assert_allclose(targets[0, 1], 0.02, rtol=1e-6)


def test_mixup_blends_images_and_targets_with_the_same_lambda():
  x, y = _batch()
  cfg = mixup.MixupConfig(cutmix_alpha=0.0, label_smoothing=0.0)
  images, targets = mixup.mix_batch(jax.random.key(2), x, y, num_classes=5, config=cfg)
  lam = float(targets[0, y[0]]) if y[0] != y[-1] else None
  assert lam is not None and 0.0 < lam < 1.0
  np.testing.assert_allclose(images, lam * x + (1 - lam) * x[::-1], atol=1e-5)


def test_cutmix_pastes_one_box_from_the_reversed_batch():
  x, y = _batch()
  cfg = mixup.MixupConfig(mixup_alpha=0.0, label_smoothing=0.0)
  for seed in range(4):
    images, targets = mixup.mix_batch(jax.random.key(seed), x, y, num_classes=5, config=cfg)
    from_partner = np.all(np.asarray(images) == np.asarray(x[::-1]), axis=-1)[0]
    kept = np.all(np.asarray(images) == np.asarray(x), axis=-1)[0]
    assert (from_partner | kept).all()
    # correct_lam: the target weight is exactly the fraction of the image kept.
    np.testing.assert_allclose(targets[0, y[0]], kept.mean(), atol=1e-6)


def test_switch_and_determinism_under_jit():
  x, y = _batch()
  fn = jax.jit(lambda k: mixup.mix_batch(k, x, y, num_classes=5))
  a, b = fn(jax.random.key(3)), fn(jax.random.key(3))
  np.testing.assert_array_equal(a[0], b[0])
  kinds = set()
  for seed in range(12):
    images, _ = fn(jax.random.key(seed))
    exact = np.any(np.all(np.asarray(images) == np.asarray(x), axis=-1))
    kinds.add("cutmix" if exact else "mixup")
  assert kinds == {"cutmix", "mixup"}


def test_cutmix_box_matches_timm_sizes():
  y0, y1, x0, x1 = mixup.cutmix_box(jax.random.key(0), 100, 80, jnp.float32(0.75))
  # ratio sqrt(0.25) = 0.5: cut 50 x 40, centred, clipped to the image.
  assert 0 <= y0 <= y1 <= 100 and 0 <= x0 <= x1 <= 80
  assert y1 - y0 <= 50 and x1 - x0 <= 40


@pytest.mark.parametrize("field,value", [("mixup_alpha", -1.0), ("prob", 1.5),
                                         ("switch_prob", -0.1), ("label_smoothing", 1.0)])
def test_bad_mixup_config_names_the_field(field, value):
  with pytest.raises(ValueError, match=field):
    mixup.MixupConfig(**{field: value})


def test_soft_cross_entropy_equals_hard_cross_entropy_on_one_hots():
  logits = jax.random.normal(jax.random.key(4), (6, 5))
  labels = jnp.arange(6) % 5
  hard = jax.nn.logsumexp(logits, -1) - logits[jnp.arange(6), labels]
  np.testing.assert_allclose(mixup.soft_cross_entropy(logits, jax.nn.one_hot(labels, 5)), hard,
                             rtol=1e-5)
