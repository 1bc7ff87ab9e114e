"""Where data lives: env var, fallback, per-config override."""
import os

from common.data import config
from common.data import paths


def test_default_data_dir_uses_env_then_home(monkeypatch, tmp_path):
  monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "env"))
  assert paths.default_data_dir() == str(tmp_path / "env")
  monkeypatch.delenv(paths.ENV_VAR)
  assert paths.default_data_dir() == os.path.expanduser("~/.cache/sparse_monorepo")


def test_config_data_dir_overrides(monkeypatch, tmp_path):
  monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "env"))
  cfg = config.image_data_config("digits")
  assert paths.data_dir(cfg) == str(tmp_path / "env")
  assert not paths.is_explicit(cfg)
  cfg.data_dir = str(tmp_path / "mine")
  assert paths.data_dir(cfg) == str(tmp_path / "mine")
  assert paths.is_explicit(cfg)
  assert paths.tokenizer_dir(cfg) == str(tmp_path / "mine" / "tokenizers")
