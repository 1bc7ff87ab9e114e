"""Where the official-code golden data lives, for every golden test: `<repo>/../shared/golden`.

`folder(name)` is the one way a test reaches it. When the folder is absent, a developer's run
skips the test and names the path; under CI (`CI=true`) the test fails instead, because CI
always has shared/ beside the clone and a silent skip would hide a missing golden check.
"""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "golden"


def path(name: str = "") -> pathlib.Path:
  """`shared/golden/<name>`, whether or not it exists (for module-level parametrisation)."""
  return ROOT / name if name else ROOT


def cases(name: str) -> list[str]:
  """The case folders of `shared/golden/<name>`, sorted; empty when the folder is absent."""
  p = path(name)
  return sorted(c.name for c in p.iterdir() if c.is_dir()) if p.is_dir() else []


def folder(name: str = "") -> pathlib.Path:
  """`shared/golden/<name>`; skips the calling test when absent (fails it under CI)."""
  p = path(name)
  if not p.exists():
    message = f"golden data absent: {p} (it ships in shared/ beside the repository)"
    if os.environ.get("CI", "").lower() == "true":
      pytest.fail(message + "; under CI this is an error, not a skip")
    pytest.skip(message)
  return p
