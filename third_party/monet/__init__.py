"""Adapter from the official Monet PyTorch/HF checkpoints to projects.monet parameters.

Upstream: dmis-lab/Monet, commit b5cb786 (HEAD 2025-01-23), file `modeling_monet.py`
(`MonetForCausalLM`, HF `trust_remote_code` model; checkpoints `MonetLLM/monet-{vd,hd}-*-hf`).
Licence: Apache-2.0 (upstream LICENSE). No upstream code is copied here; only the state_dict key
names and tensor layouts are mirrored.

  state_dict.py    torch state_dict (name -> array) -> our parameters, strict about keys and shapes
  checkpoint.py    HF checkpoint folder (config.json + *.safetensors, sharded or not) reader
"""
from third_party.monet.checkpoint import load_hf_checkpoint, read_safetensors
from third_party.monet.state_dict import (build_model, convert_state_dict, expected_torch_shapes,
                                          load_state_dict)

__all__ = ["build_model", "convert_state_dict", "expected_torch_shapes", "load_state_dict",
           "load_hf_checkpoint", "read_safetensors"]
