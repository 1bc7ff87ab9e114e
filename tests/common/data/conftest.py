"""Shared fixtures: one temporary data dir per test session, demo datasets built into it once."""
import logging

import pytest

from common.data import config


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("sparse_data"))


@pytest.fixture(scope="session")
def mnist_config(data_dir):
  def make(**overrides):
    return config.image_data_config("mnist5k", data_dir=data_dir, **overrides)
  return make


@pytest.fixture(scope="session")
def digits_config(data_dir):
  def make(**overrides):
    return config.image_data_config("digits", data_dir=data_dir, **overrides)
  return make


@pytest.fixture(scope="session")
def text_config(data_dir):
  def make(**overrides):
    return config.text_data_config("pystdlib_text", data_dir=data_dir, **overrides)
  return make


@pytest.fixture(autouse=True)
def _quiet_tfds():
  # TFDS logs every dataset load at INFO; keep failure output readable.
  logging.getLogger("absl").setLevel(logging.WARNING)
