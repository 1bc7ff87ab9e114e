"""The pixel LM (imagenet64 / cifar10 presets): data -> exact raster tokens, embeddings, bits/dim."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.data import errors as data_errors
from common.data import image_ops
from common.train import config_checks, config_io, trainer
from projects.routing_transformer import config as config_lib, decoding, input_embedding
from projects.routing_transformer import task as task_lib

CONFIGS = "projects/routing_transformer/configs"


@pytest.fixture(scope="module")
def pixel_config():
  return config_io.load_config(f"{CONFIGS}/pixel_demo.py")


@pytest.mark.parametrize("name,tfds_name,shape", [
    ("imagenet64", "tfds:downsampled_imagenet/64x64", (64, 64, 3)),
    ("cifar10", "tfds:cifar10", (32, 32, 3)),
])
def test_image_presets_load_validate_and_build_abstractly(name, tfds_name, shape):
  config = config_io.load_config(f"{CONFIGS}/paper.py:{name}")
  config_checks.validate(config)
  task = task_lib.get_task(config)
  task.validate(config)
  assert config.data.name == tfds_name and config.data.kind == "image"
  assert config_lib.sequence_length(config) == math.prod(shape)
  assert (config.model.vocab_size, config.model.ffn, config.model.residual_dropout) == (
      256, "relu", 0.3)
  model = nnx.eval_shape(lambda: task.build_model(nnx.Rngs(0)))
  pixels = model.pixels
  assert pixels.channel_table.shape == (256 * 3, 1024)
  assert pixels.row_table.shape == (max(shape), 3, 1024)
  assert model.embed is None and model.final_dense_1 is None
  # Not prepared here: the data layer's error names the dataset and how to prepare it.
  with pytest.raises(data_errors.DatasetNotFoundError, match=tfds_name.split(":")[1].split("/")[0]):
    config.data.data_dir = "/nonexistent_rt_data"
    trainer.setup(config)


def test_bad_pixel_settings_raise_naming_the_field(pixel_config):
  cases = [({"data.mean": (0.5,)}, "config.data.mean"),
           ({"data.image_size": 8}, "image_size=8"),
           ({"model.vocab_size": 258}, "vocab_size=258"),
           ({"model.positions": "sinusoidal"}, "positions='learned_nd'"),
           ({"model.image_shape": (4, 4)}, "image_shape")]
  for override, match in cases:
    config = pixel_config.copy_and_resolve_references()
    for key, value in override.items():
      section, field = key.split(".")
      config[section][field] = value
    with pytest.raises(ValueError, match=match):
      task_lib.get_task(config).validate(config)


def test_every_intensity_survives_the_image_pipeline_exactly():
  values = np.arange(256, dtype=np.uint8)
  image = np.stack([values, values[::-1], np.roll(values, 7)], -1).reshape(16, 16, 3)
  floats = image_ops.normalize(image.astype(np.float32) / 255.0, (0.0,), (1.0,))
  tokens = np.asarray(task_lib.pixels_to_tokens(jnp.asarray(floats[None])))
  np.testing.assert_array_equal(tokens[0], image.reshape(-1))  # raster: row, column, channel
  assert tokens[0, :3].tolist() == [0, 255, 249] and tokens[0, 3] == 1


def test_pixel_embedding_equals_the_tf_layout():
  """Flat-position embedding == TF: channel embeddings concatenated to [B,H,W,C*hidden], plus
  per-axis tables [max_len, C*hidden], reshaped to [B, H*W*C, hidden]."""
  shape, hidden = (2, 3, 3), 4
  emb = input_embedding.PixelEmbedding(shape, hidden, kernel_init=nnx.initializers.normal(1.0),
                                       rngs=nnx.Rngs(0))
  tokens = np.random.RandomState(0).randint(0, 256, (2, 18)).astype(np.int32)
  got = np.asarray(emb(jnp.asarray(tokens), jnp.arange(18)))
  h, w, c = shape
  table = np.asarray(emb.channel_table[...]) * hidden ** 0.5
  img = tokens.reshape(2, h, w, c)
  x = np.concatenate([table[img[..., i] + 256 * i] for i in range(c)], axis=-1)  # [B,H,W,C*hid]
  depth = c * hidden
  rows = np.asarray(emb.row_table[...]).reshape(-1, depth) * depth ** 0.5
  cols = np.asarray(emb.column_table[...]).reshape(-1, depth) * depth ** 0.5
  x = x + rows[:h][None, :, None, :] + cols[:w][None, None, :, :]
  np.testing.assert_allclose(got, x.reshape(2, h * w * c, hidden), rtol=1e-5, atol=1e-5)


class _FixedLogits:
  """A stand-in model: records its inputs, returns given logits and a zero clustering loss."""

  def __init__(self, logits):
    self.logits, self.inputs = logits, None

  def __call__(self, tokens, *, train, rngs):
    self.inputs = tokens
    return self.logits, jnp.zeros(())


def test_bits_per_dim_and_shift_on_a_hand_made_case(pixel_config):
  """p(target) = 1/2 everywhere -> exactly 1 bit/dim; uniform -> 8 bits/dim."""
  task = task_lib.get_task(pixel_config)
  image = np.random.RandomState(1).randint(0, 256, (2, 4, 4, 3))
  batch = {"image": jnp.asarray(image / 255.0, jnp.float32), "label": jnp.zeros(2, jnp.int32)}
  targets = image.reshape(2, 48)
  other = np.log(0.5 / 255)
  logits = np.full((2, 48, 256), other, np.float32)
  np.put_along_axis(logits, targets[..., None], np.log(0.5), axis=-1)
  model = _FixedLogits(jnp.asarray(logits))
  loss, metrics = task.loss(model, batch, train=False, rngs=None)
  np.testing.assert_allclose(float(metrics["bits_per_dim"]), 1.0, rtol=1e-5)
  np.testing.assert_allclose(float(loss), math.log(2), rtol=1e-5)
  inputs = np.asarray(model.inputs)
  assert (inputs[:, 0] == 0).all() and (inputs[:, 1:] == targets[:, :-1]).all()
  model = _FixedLogits(jnp.zeros((2, 48, 256)))
  # Padding examples (mask 0) do not count: the second image's logits would not change it.
  _, metrics = task.loss(model, dict(batch, mask=jnp.asarray([1, 0])), train=False, rngs=None)
  np.testing.assert_allclose(float(metrics["bits_per_dim"]), 8.0, rtol=1e-5)


def test_tiny_pixel_model_trains_on_digits(pixel_config, tmp_path):
  config = pixel_config.copy_and_resolve_references()
  config.train.num_steps = config.train.checkpoint_every = 1
  config.eval.max_batches = 1
  final = trainer.train(config, str(tmp_path))
  assert np.isfinite(final["train/loss"])
  bpd = final["eval/loss/test/bits_per_dim"]
  # An untrained 256-way softmax gives ~8 bits/dim; one step cannot reach 0.
  assert 4.0 < bpd < 9.0 and np.isfinite(final["eval/loss/test/clustering_loss"])
  with open(tmp_path / "final_metrics.json") as f:
    assert json.load(f)["step"] == 1


def test_pixel_and_sinusoidal_decoding_equal_the_full_forward(pixel_config):
  """Positions enter decoding one step at a time (local heads only: membership aside)."""
  text = config_io.load_config(f"{CONFIGS}/stdlib_demo.py:tiny,local_only,sinusoidal")
  pixels = pixel_config.copy_and_resolve_references()
  pixels.model.update(dict(num_local_heads=4, num_routing_heads=0))
  for config, vocab in ((pixels, 256), (text, 258)):
    model = task_lib.get_task(config).build_model(nnx.Rngs(0))
    n = config_lib.sequence_length(config)
    tokens = np.random.RandomState(0).randint(0, vocab, (2, n)).astype(np.int32)
    full = np.asarray(nnx.jit(lambda m, x: m(x)[0])(model, tokens))
    dec = np.asarray(nnx.jit(decoding.decode_logits)(model, tokens))
    np.testing.assert_allclose(dec, full, atol=2e-4, rtol=2e-4)
    assert not np.allclose(full[:, 0], full[:, 1])  # positions matter: not a bag of tokens
