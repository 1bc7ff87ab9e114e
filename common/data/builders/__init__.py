"""The demo datasets built locally from data that ships inside installed packages.

A small registry: name -> where its builder class lives, what kind of data it holds and
which splits it has. Builder modules are imported only when that dataset is used.
To add one: create `builders/<name>/<name>.py` with a `base.LocalBuilder` subclass whose
snake-cased class name is `<name>`, and add an entry here.
"""
from __future__ import annotations

import dataclasses
import importlib


@dataclasses.dataclass(frozen=True)
class DemoDataset:
  name: str
  module: str          # importable module holding the builder class
  class_name: str
  kind: str            # "image" | "text"
  splits: tuple[str, ...]
  # Split sizes fixed by the builder's definition; None where they depend on the machine.
  expected_sizes: dict[str, int] | None = None

  def builder_class(self):
    return getattr(importlib.import_module(self.module), self.class_name)


REGISTRY: dict[str, DemoDataset] = {
    d.name: d for d in (
        DemoDataset("mnist5k", "common.data.builders.mnist5k.mnist5k", "Mnist5k", "image",
                    ("train", "test"), {"train": 4000, "test": 1000}),
        DemoDataset("digits", "common.data.builders.digits.digits", "Digits", "image",
                    ("train", "test"), {"train": 1437, "test": 360}),
        DemoDataset("pystdlib_text", "common.data.builders.pystdlib_text.pystdlib_text",
                    "PystdlibText", "text", ("train", "validation")),
    )
}


def get(name: str) -> DemoDataset:
  if name not in REGISTRY:
    raise ValueError(f"config.data.name={name!r} is not a demo dataset; allowed: "
                     f"{sorted(REGISTRY)} or 'tfds:<tfds_name>' for a prepared TFDS dataset.")
  return REGISTRY[name]
