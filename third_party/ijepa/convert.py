"""Official I-JEPA state_dict (numpy) -> projects.sparse_jepa encoder / predictor parameters.

Layouts (torch): nn.Linear weight (out, in); Conv2d weight (O, I, kh, kw); the fused attention
`attn.qkv.weight` (3D, D) is [q; k; v] along rows, each head-major (official reshape
(B, N, 3, H, D/H), vision_transformer.py L137). Golden-case state_dicts hold both models in one npz
with keys `encoder/<official key>` and `predictor/<official key>`; the encoder weights also serve as
the target encoder (official `copy.deepcopy(encoder)`, train.py L169).
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import common  # noqa: F401  (no eager sharding: params carry logical names without a mesh)

from projects.sparse_jepa import losses
from projects.sparse_jepa import model as model_lib

Array = np.ndarray
_LINEAR = {"kernel": ("weight", lambda w: w.T), "bias": ("bias", lambda b: b)}
_NORM = {"scale": ("weight", lambda w: w), "bias": ("bias", lambda b: b)}


def _block_source(rest: tuple, prefix: str, dim: int) -> tuple[str, Callable[[Array], Array]]:
  """Torch key and transform for one of our parameters inside a transformer block."""
  mod, leaf = rest[0], rest[-1]
  if mod in ("norm1", "norm2"):
    name, fn = _NORM[leaf]
    return f"{prefix}.{mod}.{name}", fn
  if mod == "mlp":
    name, fn = _LINEAR[leaf]
    return f"{prefix}.mlp.{rest[1]}.{name}", fn
  if mod == "attn" and rest[1] == "proj":
    name, fn = _LINEAR[leaf]
    return f"{prefix}.attn.proj.{name}", fn
  if mod == "attn" and rest[1] in ("q", "k", "v"):
    part = "qkv".index(rest[1])
    rows = slice(part * dim, (part + 1) * dim)
    if leaf == "kernel":
      return f"{prefix}.attn.qkv.weight", lambda w: w[rows].T
    return f"{prefix}.attn.qkv.bias", lambda b: b[rows]
  raise KeyError(rest)


def _source(path: tuple, dim: int) -> tuple[str, Callable[[Array], Array]]:
  """Maps our flat state path to (official key, torch->ours transform)."""
  head, leaf = path[0], path[-1]
  if head in ("pos_embed", "predictor_pos_embed", "mask_token"):
    return head, lambda t: t
  if head == "patch_embed":
    if leaf == "kernel":  # OIHW -> HWIO
      return "patch_embed.proj.weight", lambda w: w.transpose(2, 3, 1, 0)
    return "patch_embed.proj.bias", lambda b: b
  if head in ("norm", "predictor_norm"):
    name, fn = _NORM[leaf]
    return f"{head}.{name}", fn
  if head in ("predictor_embed", "predictor_proj"):
    name, fn = _LINEAR[leaf]
    return f"{head}.{name}", fn
  if head in ("blocks", "predictor_blocks"):
    return _block_source(path[2:], f"{head}.{path[1]}", dim)
  raise KeyError(path)


def load_state_dict(module: nnx.Module, state_dict: Mapping[str, Array], *, dim: int,
                    what: str) -> None:
  """Copies an official state_dict into `module` in place (strict, like load_state_dict).

  Raises ValueError listing unknown and missing keys, or a shape mismatch naming the key.
  """
  flat = nnx.state(module, nnx.Variable).flat_state()
  plan = {}
  for path, var in flat:
    try:
      key, fn = _source(tuple(path), dim)
    except KeyError:
      raise ValueError(f"{what}: no official key is known for our parameter {path}.") from None
    plan.setdefault(key, []).append((var, fn, path))
  unknown = sorted(set(state_dict) - set(plan))
  missing = sorted(set(plan) - set(state_dict))
  if unknown or missing:
    raise ValueError(f"{what} state_dict does not match the model: unknown keys {unknown}; "
                     f"missing keys {missing}.")
  for key, targets in plan.items():
    src = np.asarray(state_dict[key], np.float32)
    for var, fn, path in targets:
      value = fn(src)
      if value.shape != var.shape:
        raise ValueError(f"{what} key {key!r} has shape {src.shape}, giving {value.shape} for "
                         f"{'.'.join(map(str, path))}, which needs {var.shape}.")
      var.set_value(jnp.asarray(value, var.dtype))


def split_prefixed(state_dict: Mapping[str, Array]) -> dict[str, dict[str, Array]]:
  """Splits `encoder/<key>` / `predictor/<key>` (and optional `target_encoder/<key>`) entries.

  A DistributedDataParallel `module.` in front of the official key is dropped (the released
  checkpoints were saved from DDP-wrapped models). Any other key is an error listing them.
  """
  out: dict[str, dict[str, Array]] = {"encoder": {}, "predictor": {}, "target_encoder": {}}
  bad = []
  for key, value in state_dict.items():
    prefix, _, rest = key.partition("/")
    rest = rest[len("module."):] if rest.startswith("module.") else rest
    if prefix in out and rest:
      out[prefix][rest] = value
    else:
      bad.append(key)
  if bad:
    raise ValueError(f"state_dict keys without an 'encoder/', 'predictor/' or 'target_encoder/' "
                     f"prefix: {bad}.")
  if not out["target_encoder"]:
    out["target_encoder"] = out["encoder"]  # official: the target starts as a copy (train.py L169)
  return out


def _norm_eps(spec: Any) -> float:
  """Reads the eps of the official `norm_layer` description ('partial(nn.LayerNorm, eps=1e-6)')."""
  if isinstance(spec, (int, float)):
    return float(spec)
  match = re.search(r"eps\s*=\s*([0-9.eE+-]+)", str(spec))
  if match:
    return float(match.group(1))
  if str(spec).strip() in ("nn.LayerNorm", "LayerNorm"):
    return 1e-5  # torch's default; the class default of the official ViTs.
  raise ValueError(f"norm_layer={spec!r}; allowed: nn.LayerNorm or partial(nn.LayerNorm, eps=...).")


def build_models(config: Mapping[str, Any], *, abstract: bool = False):
  """Builds (encoder, predictor, target_encoder) from a golden config's `config` section.

  abstract=True returns shape-only models (nnx.eval_shape: no init compute), to be filled by
  `load_state_dict`, which must then cover every variable (it is strict). Dropout/drop-path rates
  are accepted and ignored: the converter runs eval mode.
  """
  if abstract:
    return nnx.eval_shape(lambda: build_models(config))
  rngs = nnx.Rngs(0)
  enc, pred = dict(config["encoder"]), dict(config["predictor"])
  img = enc["img_size"]
  img = int(img[0] if isinstance(img, (list, tuple)) else img)
  enc_kw = dict(img_size=img, patch_size=int(enc["patch_size"]),
                in_chans=int(enc.get("in_chans", 3)), embed_dim=int(enc["embed_dim"]),
                depth=int(enc["depth"]), num_heads=int(enc["num_heads"]),
                mlp_ratio=float(enc.get("mlp_ratio", 4.0)),
                qkv_bias=bool(enc.get("qkv_bias", True)),
                norm_eps=_norm_eps(enc.get("norm_layer", "nn.LayerNorm")))
  encoder = model_lib.VisionTransformer(**enc_kw, rngs=rngs)
  target = model_lib.VisionTransformer(**enc_kw, rngs=rngs)
  predictor = model_lib.VisionTransformerPredictor(
      num_patches=int(pred["num_patches"]), embed_dim=int(pred["embed_dim"]),
      predictor_embed_dim=int(pred["predictor_embed_dim"]), depth=int(pred["depth"]),
      num_heads=int(pred["num_heads"]), mlp_ratio=float(pred.get("mlp_ratio", 4.0)),
      qkv_bias=bool(pred.get("qkv_bias", True)),
      norm_eps=_norm_eps(pred.get("norm_layer", "nn.LayerNorm")), rngs=rngs)
  return encoder, predictor, target


def convert(config: Mapping[str, Any], state_dict: Mapping[str, Array]):
  """Returns (encoder, predictor, target_encoder) holding the official weights."""
  encoder, predictor, target = build_models(config, abstract=True)
  parts = split_prefixed(state_dict)
  load_state_dict(encoder, parts["encoder"], dim=encoder.embed_dim, what="encoder")
  load_state_dict(target, parts["target_encoder"], dim=target.embed_dim, what="target_encoder")
  load_state_dict(predictor, parts["predictor"], dim=predictor.predictor_embed_dim,
                  what="predictor")
  return encoder, predictor, target


def load_jepa(model: Any, state_dict: Mapping[str, Array]) -> Any:
  """Fills a projects.sparse_jepa JEPA (concrete or from nnx.eval_shape) with official weights.

  `state_dict` holds `encoder/`, `predictor/` and optionally `target_encoder/` keys (the
  released checkpoints' three state_dicts; without the last, the target is the encoder). A
  SparseJEPA head has no official weights, so a model with one is refused.
  """
  if getattr(model, "head", None) is not None:
    raise ValueError("the model has a SparseJEPA head (config.model.sparse=True), which has no "
                     "official weights; convert into an I-JEPA config (sparse=False).")
  parts = split_prefixed(state_dict)
  load_state_dict(model.encoder, parts["encoder"], dim=model.encoder.embed_dim, what="encoder")
  load_state_dict(model.target_encoder, parts["target_encoder"],
                  dim=model.target_encoder.embed_dim, what="target_encoder")
  load_state_dict(model.predictor, parts["predictor"], dim=model.predictor.predictor_embed_dim,
                  what="predictor")
  return model


def _indexed(inputs: Mapping[str, Array], name: str) -> list[Array]:
  keys = sorted((k for k in inputs if k.startswith(name + "/")), key=lambda k: int(k.split("/")[1]))
  if not keys:
    raise ValueError(f"inputs.npz has no '{name}/<i>' arrays; keys: {sorted(inputs)}.")
  return [np.asarray(inputs[k]).astype(np.int32) for k in keys]


def run_case(case_dir: str) -> dict[str, np.ndarray]:
  """Converts a golden case folder and runs the official train.py forward in eval mode."""
  with open(os.path.join(case_dir, "config.json")) as f:
    config = json.load(f)
  with np.load(os.path.join(case_dir, "state_dict.npz")) as z:
    state_dict = dict(z)
  with np.load(os.path.join(case_dir, "inputs.npz")) as z:
    inputs = dict(z)
  return run(config["config"], state_dict, inputs)


def run(config: Mapping[str, Any], state_dict: Mapping[str, Array],
        inputs: Mapping[str, Array]) -> dict[str, np.ndarray]:
  """Converted forward: `inputs` holds x (NCHW float32), masks_enc/<i> and masks_pred/<i>."""
  encoder, predictor, target = convert(config, state_dict)
  x = jnp.asarray(np.asarray(inputs["x"], np.float32).transpose(0, 2, 3, 1))  # NCHW -> NHWC
  masks_enc, masks_pred = _indexed(inputs, "masks_enc"), _indexed(inputs, "masks_pred")

  @nnx.jit
  def forward(enc, pred, tgt, x, m_enc, m_pred):
    return losses.ijepa_forward(enc, pred, tgt, x, m_enc, m_pred)

  with jax.default_matmul_precision("highest"):
    out = forward(encoder, predictor, target, x, np.stack(masks_enc), np.stack(masks_pred))
  return {k: np.asarray(v) for k, v in out.items()}
