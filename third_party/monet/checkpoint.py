"""Reading an HF Monet checkpoint folder: config.json plus one or many *.safetensors files.

The released checkpoints are bfloat16 safetensors, which numpy cannot name natively, so the
(simple, documented) safetensors container is parsed here and BF16 is mapped to ml_dtypes.bfloat16
(shipped with jax). Format: an 8-byte little-endian header length, a JSON header
{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the raw bytes.
"""
from __future__ import annotations

import json
import os
import struct

import ml_dtypes
import numpy as np

from projects.monet.config import MonetConfig
from third_party.monet.state_dict import build_model

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


def read_safetensors(path: str) -> dict[str, np.ndarray]:
  """All tensors of one .safetensors file as numpy arrays (memory-mapped, read-only)."""
  with open(path, "rb") as f:
    (header_len,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(header_len))
  data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len)
  out = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    if info["dtype"] not in _DTYPES:
      raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}; supported: {sorted(_DTYPES)}.")
    begin, end = info["data_offsets"]
    out[name] = data[begin:end].view(_DTYPES[info["dtype"]]).reshape(info["shape"])
  return out


def read_checkpoint_tensors(directory: str) -> dict[str, np.ndarray]:
  """Tensors of a checkpoint folder, following model.safetensors.index.json when sharded."""
  index = os.path.join(directory, "model.safetensors.index.json")
  if os.path.exists(index):
    with open(index) as f:
      files = sorted(set(json.load(f)["weight_map"].values()))
  else:
    files = sorted(n for n in os.listdir(directory) if n.endswith(".safetensors"))
  if not files:
    raise ValueError(f"checkpoint directory={directory!r}: no *.safetensors files found.")
  tensors = {}
  for name in files:
    tensors.update(read_safetensors(os.path.join(directory, name)))
  return tensors


def load_hf_checkpoint(directory: str, **config_overrides):
  """(config, model) from an HF Monet folder; overrides e.g. dtype=jnp.bfloat16."""
  with open(os.path.join(directory, "config.json")) as f:
    cfg = MonetConfig.from_hf(json.load(f), **config_overrides)
  return cfg, build_model(cfg, read_checkpoint_tensors(directory))
