"""Image pipelines: formats, determinism, sharding, resume, eval padding, label noise."""
import collections
import json

import numpy as np
import pytest

from common.data import augment
from common.data import label_noise
from common.data import pipeline


def _take(it, n):
  return [next(it) for _ in range(n)]


def _same(a, b):
  return len(a) == len(b) and all(
      x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b))


def _train(cfg, seed=0, index=0, count=1, batch=16):
  return pipeline.train_iterator(cfg, seed=seed, process_index=index, process_count=count,
                                 batch_size=batch)


def test_batch_format_and_normalisation(mnist_config):
  batch = next(_train(mnist_config(), batch=8))
  assert set(batch) == {"image", "label"}
  assert batch["image"].shape == (8, 28, 28, 1) and batch["image"].dtype == np.float32
  assert batch["label"].shape == (8,) and batch["label"].dtype == np.int32
  # (x / 255 - 0.5) / 0.5 spans [-1, 1] on MNIST (black background, white strokes).
  assert batch["image"].min() == -1.0 and batch["image"].max() == 1.0


def test_resize_and_channels(digits_config):
  cfg = digits_config(image_size=28, channels=3, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
  batch = next(_train(cfg, batch=4))
  assert batch["image"].shape == (4, 28, 28, 3)
  # Grey repeated into RGB, then normalised per channel: undoing that gives equal channels.
  pixels = batch["image"] * 0.5 + np.array([0.1, 0.2, 0.3], np.float32)
  assert np.allclose(pixels[..., 0], pixels[..., 1]) and np.allclose(pixels[..., 0], pixels[..., 2])
  assert pipeline.batch_spec(cfg, 4)["image"] == ((4, 28, 28, 3), np.dtype("float32"))
  assert pipeline.num_classes(cfg) == 10


def test_label_key_empty_reads_no_labels(digits_config):
  """Unlabelled image sets (downsampled_imagenet for pixel LMs) set label_key=''."""
  labelled = next(_train(digits_config(), batch=8))
  unlabelled = next(_train(digits_config(label_key=""), batch=8))
  np.testing.assert_array_equal(unlabelled["image"], labelled["image"])
  assert labelled["label"].any() and not unlabelled["label"].any()
  assert pipeline.num_classes(digits_config(label_key="")) == 1
  with pytest.raises(ValueError, match="label_noise"):
    next(_train(digits_config(label_key="", label_noise=0.1), batch=8))


def test_same_seed_same_batches_different_seed_different(digits_config):
  cfg = digits_config(augment=("random_crop", "flip", "noise"))
  a = _take(_train(cfg, seed=1), 3)
  b = _take(_train(cfg, seed=1), 3)
  c = _take(_train(cfg, seed=2), 3)
  assert _same(a, b)
  assert not np.array_equal(a[0]["label"], c[0]["label"])
  # Thread count never changes results (randomness is keyed by example position).
  d = _take(_train(digits_config(augment=("random_crop", "flip", "noise"), read_threads=0),
                   seed=1), 3)
  assert _same(a, d)


def test_epochs_reshuffle_and_cover_everything(digits_config):
  cfg = digits_config()
  it = _train(cfg, batch=479)  # 1437 = 3 * 479: one epoch is exactly 3 batches
  epochs = [np.concatenate([b["image"].reshape(479, -1) for b in _take(it, 3)]) for _ in range(2)]
  key = lambda rows: sorted(r.tobytes() for r in rows)  # noqa: E731
  assert key(epochs[0]) == key(epochs[1])
  assert not np.array_equal(epochs[0], epochs[1])


def _all_examples(cfg, split="train"):
  """Every example of `split` once, unaugmented, keyed by (image bytes, label)."""
  return collections.Counter(
      (img.tobytes(), int(label))
      for b in pipeline.eval_iterator(cfg, split=split, process_index=0, process_count=1,
                                      batch_size=500)
      for img, label, m in zip(b["image"], b["label"], b["mask"]) if m)


def test_process_shares_assemble_the_single_process_batch(digits_config):
  # One global stream (shuffle and augmentation keyed by global position); process p of n
  # reads rows [p*b, (p+1)*b) of every global batch. So the processes' local batches,
  # concatenated in process order, are the single-process batch row for row, at every step.
  # (Until issue 8 each process shuffled its own i::n shard: the global batch depended on n.)
  cfg = digits_config(augment=("random_crop", "flip", "noise"), label_noise=0.2)
  single = _take(_train(cfg, seed=3, batch=96), 17)  # 17 * 96 > 1437: crosses an epoch
  for count in (2, 3):
    shares = [_take(_train(cfg, seed=3, index=i, count=count, batch=96 // count), 17)
              for i in range(count)]
    joined = [{k: np.concatenate([s[step][k] for s in shares]) for k in single[0]}
              for step in range(17)]
    assert _same(joined, single), count


def test_shares_resume_on_another_process_count(digits_config):
  # The position is "global batches consumed", the same on every process: a state saved by
  # one of 2 processes restores each of 3 processes onto the same global stream.
  cfg = digits_config(augment=("flip",))
  it = _train(cfg, seed=5, index=1, count=2, batch=12)
  _take(it, 5)
  state = json.loads(json.dumps(it.get_state()))
  expected = _take(_train(cfg, seed=5, batch=24), 8)[5:]
  parts = []
  for index in range(3):
    fresh = _train(cfg, seed=5, index=index, count=3, batch=8)
    fresh.set_state(state)
    parts.append(_take(fresh, 3))
  joined = [{k: np.concatenate([p[s][k] for p in parts]) for k in expected[0]} for s in range(3)]
  assert _same(joined, expected)


def test_get_state_set_state_resumes_identically(digits_config):
  cfg = digits_config(augment=("random_crop", "flip", "noise"), label_noise=0.3)
  it = _train(cfg, seed=5, batch=32)
  _take(it, 50)  # past the first epoch boundary (1437 / 32 < 45)
  state = json.loads(json.dumps(it.get_state()))  # what grain's Orbax handler stores
  expected = _take(it, 4)
  fresh = _train(cfg, seed=5, batch=32)
  fresh.set_state(state)
  assert _same(_take(fresh, 4), expected)


def test_orbax_checkpoint_round_trip(digits_config, tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  import grain
  cfg = digits_config(augment=("flip",))
  it = _train(cfg, seed=3, batch=8)
  _take(it, 7)
  with ocp.CheckpointManager(str(tmp_path / "ckpt")) as manager:
    manager.save(7, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    manager.wait_until_finished()
    expected = _take(it, 3)
    fresh = _train(cfg, seed=3, batch=8)
    manager.restore(7, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
  assert _same(_take(fresh, 3), expected)


@pytest.mark.parametrize("count", [1, 3])
def test_eval_pads_and_masks_every_example_once(mnist_config, count):
  cfg = mnist_config()
  per_process, seen = [], []
  for index in range(count):
    batches = list(pipeline.eval_iterator(cfg, split="test", process_index=index,
                                          process_count=count, batch_size=64))
    per_process.append(len(batches))
    for b in batches:
      assert b["mask"].dtype == np.float32 and b["mask"].shape == (64,)
      assert b["image"].shape == (64, 28, 28, 1)
      real = b["mask"] == 1
      assert np.all(b["image"][~real] == 0)
      seen += [img.tobytes() for img in b["image"][real]]
  assert len(set(per_process)) == 1  # every process steps the same number of times
  assert len(seen) == len(set(seen)) == 1000


def test_eval_is_ordered_and_unaugmented(mnist_config):
  cfg = mnist_config(augment=("noise",), label_noise=0.5)
  a = list(pipeline.eval_iterator(cfg, split="test", process_index=0, process_count=1,
                                  batch_size=250))
  clean = list(pipeline.eval_iterator(mnist_config(), split="test", process_index=0,
                                      process_count=1, batch_size=250))
  assert _same(a, clean)


def test_label_noise_fraction_and_determinism(digits_config):
  frac = 0.25
  clean = _all_examples(digits_config())
  def labels(cfg):
    batch = next(_train(cfg, batch=1437))  # one epoch
    return collections.Counter((img.tobytes(), int(label))
                               for img, label in zip(batch["image"], batch["label"]))
  noisy = labels(digits_config(label_noise=frac))
  changed = sum((noisy - clean).values())
  assert changed == round(frac * 1437)  # every replaced label differs from the true one
  # Noise is keyed by the example's index in the split, so it cannot depend on the processes
  # (test_process_shares_assemble_the_single_process_batch checks the assembled batches).
  assert labels(digits_config(label_noise=frac, label_noise_seed=1)) != noisy


def test_label_noise_module():
  noise = label_noise.LabelNoise(1000, 0.1, seed=3, num_classes=10)
  assert noise.is_noisy.sum() == 100
  labels = np.arange(1000) % 10
  new = np.array([noise(i, l) for i, l in enumerate(labels)])
  assert np.array_equal(new != labels, noise.is_noisy)
  assert new.min() >= 0 and new.max() < 10


def test_augment_registry_extension(digits_config):
  @augment.register("invert_for_test", override=True)
  def invert(image, rng, data_config):
    del rng, data_config
    return 1.0 - image
  plain = next(_train(digits_config(), batch=8))
  inverted = next(_train(digits_config(augment=("invert_for_test",)), batch=8))
  assert np.allclose(plain["image"], -inverted["image"])
  with pytest.raises(ValueError, match="augment"):
    _train(digits_config(augment=("no_such_op",)))


def test_inception_crop_on_arrays(digits_config):
  cfg = digits_config(image_size=16, augment=("inception_crop", "flip_lr"))
  a = next(_train(cfg, seed=1, batch=8))
  assert a["image"].shape == (8, 16, 16, 1)
  assert not np.array_equal(a["image"], next(_train(digits_config(image_size=16), seed=1,
                                                    batch=8))["image"])
  assert _same([a], [next(_train(cfg, seed=1, batch=8))])


def test_worker_processes_do_not_change_batches(digits_config):
  cfg = dict(augment=("random_crop", "noise"))
  a = _take(_train(digits_config(**cfg), seed=4, batch=8), 4)
  it = _train(digits_config(num_workers=2, **cfg), seed=4, batch=8)
  try:
    b = _take(it, 4)
  finally:
    it.close()
  assert _same(a, b)


def test_repeated_augmentation_stream_follows_deit():
  import grain
  from common.data import image_pipeline
  n, r = 600, 3
  parent = grain.MapDataset.range(n).shuffle(seed=5).repeat()
  ra = image_pipeline.RepeatedAugmentation(parent, n=n, repeats=r)
  m = 512  # (600 // 256) * 256 positions an epoch
  epoch0, epoch1 = [ra[i] for i in range(m)], [ra[m + i] for i in range(m)]
  # The first ceil(512 / 3) = 171 examples of the parent's epoch-0 permutation, each 3 times in a
  # row (the last one cut to 2 copies); epoch 1 does the same with the parent's next permutation.
  assert epoch0 == [parent[i // r] for i in range(m)]
  assert epoch1 == [parent[n + i // r] for i in range(m)]
  assert len(set(epoch0)) == 171 and set(epoch0) != set(epoch1)
  with pytest.raises(ValueError, match="at least 256 training examples.*repeated_aug=0"):
    image_pipeline.RepeatedAugmentation(grain.MapDataset.range(100).repeat(), n=100, repeats=3)


def test_repeated_augmentation_copies_share_the_example_not_the_augmentation(digits_config):
  cfg = digits_config(augment=("random_crop", "noise"), repeated_aug=3)
  batch = next(_train(cfg, batch=12))
  labels, images = batch["label"].reshape(4, 3), batch["image"].reshape(4, 3, -1)
  assert (labels == labels[:, :1]).all()          # each example three times in a row
  assert not np.array_equal(images[:, 0], images[:, 1])   # each copy augmented apart
  plain = next(_train(digits_config(augment=("random_crop", "noise")), batch=12))
  assert len(set(map(int, plain["label"]))) > 4   # without it, 12 different examples
  with pytest.raises(ValueError, match="repeated_aug"):
    next(_train(digits_config(repeated_aug=1), batch=12))
