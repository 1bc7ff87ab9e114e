"""Reads an HF OPT checkpoint directory and maps its tensors to our dense OPT parameter tree.

HF layout (torch nn.Linear weights are [out, in]; ours, nnx.Linear kernels, are [in, out]):
  [model.]decoder.embed_tokens.weight          [V, d]     -> embed_tokens.embedding
  [model.]decoder.embed_positions.weight       [P+2, d]   -> embed_positions.embedding
  [model.]decoder.layers.N.self_attn.{q,k,v,out}_proj.{weight,bias}
  [model.]decoder.layers.N.{self_attn_layer_norm,final_layer_norm}.{weight,bias}
  [model.]decoder.layers.N.{fc1,fc2}.{weight,bias}
  [model.]decoder.final_layer_norm.{weight,bias}
  lm_head.weight (optional: tied to embed_tokens, checked equal when present)
`OPTForCausalLM.save_pretrained` writes the `model.` prefix; some Hub uploads (OPTModel) lack it.
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

CONFIG_FILE = "config.json"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
LAYER_NORMS = ("self_attn_layer_norm", "final_layer_norm")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


def read_config(directory: str) -> dict[str, Any]:
  path = os.path.join(directory, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: pass --hf the directory of an HF OPT checkpoint "
                            "(config.json and model.safetensors, e.g. a download of "
                            "facebook/opt-125m or Aalaa/opt-125m-wikitext2).")
  with open(path) as f:
    return json.load(f)


def config_fields(hf: dict[str, Any]) -> dict[str, int]:
  """OPTConfig fields from config.json; refuses variants our OPT does not implement."""
  checks = {
      "do_layer_norm_before": (hf.get("do_layer_norm_before", True), True,
                               "post-LN OPT (opt-350m) is not implemented"),
      "activation_function": (hf.get("activation_function", "relu"), "relu", "only ReLU FFNs"),
      "word_embed_proj_dim": (hf.get("word_embed_proj_dim", hf["hidden_size"]), hf["hidden_size"],
                              "project_in/project_out (opt-350m) are not implemented"),
      "enable_bias": (hf.get("enable_bias", True), True, "bias-free OPT is not implemented"),
      "layer_norm_elementwise_affine": (hf.get("layer_norm_elementwise_affine", True), True,
                                        "LayerNorms without affine weights are not implemented"),
  }
  for name, (got, want, why) in checks.items():
    if got != want:
      raise ValueError(f"config.json {name}={got!r} is not supported ({why}); need {want!r}.")
  return dict(vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"],
              num_layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
              ffn_dim=hf["ffn_dim"], max_position_embeddings=hf["max_position_embeddings"])


def read_tensors(directory: str) -> dict[str, np.ndarray]:
  """All tensors of model.safetensors (or the shards a model.safetensors.index.json lists)."""
  try:
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("reading HF checkpoints needs the 'safetensors' package: "
                      "pip install safetensors") from e
  single, index = os.path.join(directory, SINGLE_FILE), os.path.join(directory, INDEX_FILE)
  if os.path.exists(single):
    files = [single]
  elif os.path.exists(index):
    with open(index) as f:
      files = sorted({os.path.join(directory, v) for v in json.load(f)["weight_map"].values()})
  else:
    raise FileNotFoundError(
        f"neither {SINGLE_FILE} nor {INDEX_FILE} is in {directory}; only safetensors checkpoints "
        "are read (convert a pytorch_model.bin once with transformers: "
        "OPTForCausalLM.from_pretrained(d).save_pretrained(d, safe_serialization=True)).")
  tensors = {}
  for path in files:
    tensors.update(load_file(path))
  return tensors


def _strip(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  out = {}
  for key, value in tensors.items():
    out[key[len("model."):] if key.startswith("model.decoder.") else key] = value
  return out


def convert_tensors(tensors: dict[str, np.ndarray], fields: dict[str, int]) -> dict:
  """HF tensors -> the pure-dict parameter tree of projects.sea.opt.OPT (dense parts), float32."""
  t = _strip(tensors)
  used = set()

  def take(key, shape):
    if key not in t:
      raise KeyError(f"checkpoint has no tensor {key!r} (nor model.{key}); is it an OPT "
                     f"checkpoint with {fields['num_layers']} layers?")
    value = np.asarray(t[key], np.float32)
    if value.shape != tuple(shape):
      raise ValueError(f"tensor {key!r} has shape {value.shape}; config.json implies {shape}.")
    used.add(key)
    return value

  d, f, v = fields["hidden_size"], fields["ffn_dim"], fields["vocab_size"]
  ln = lambda p: {"scale": take(f"{p}.weight", (d,)), "bias": take(f"{p}.bias", (d,))}
  lin = lambda p, din, dout: {"kernel": take(f"{p}.weight", (dout, din)).T.copy(),
                              "bias": take(f"{p}.bias", (dout,))}
  params = {
      "embed_tokens": {"embedding": take("decoder.embed_tokens.weight", (v, d))},
      "embed_positions": {"embedding": take("decoder.embed_positions.weight",
                                            (fields["max_position_embeddings"] + 2, d))},
      "final_layer_norm": ln("decoder.final_layer_norm"),
      "layers": {},
  }
  for i in range(fields["num_layers"]):
    p = f"decoder.layers.{i}"
    layer = {name: ln(f"{p}.{name}") for name in LAYER_NORMS}
    layer["self_attn"] = {name: lin(f"{p}.self_attn.{name}", d, d) for name in PROJECTIONS}
    layer["fc1"] = lin(f"{p}.fc1", d, f)
    layer["fc2"] = lin(f"{p}.fc2", f, d)
    params["layers"][i] = layer
  if "lm_head.weight" in t:
    used.add("lm_head.weight")
    if not np.array_equal(np.asarray(t["lm_head.weight"], np.float32),
                          params["embed_tokens"]["embedding"]):
      raise ValueError("lm_head.weight differs from embed_tokens.weight: this OPT has an untied "
                       "LM head, which projects.sea.opt does not implement.")
  extra = sorted(set(t) - used)
  if extra:
    raise ValueError(f"unexpected tensors {extra[:8]} (of {len(extra)}): not an OPT layout we map.")
  return params


def read_checkpoint(directory: str) -> tuple[dict[str, int], dict]:
  """(OPTConfig fields, dense parameter tree) of an HF OPT checkpoint directory."""
  fields = config_fields(read_config(directory))
  return fields, convert_tensors(read_tensors(directory), fields)
