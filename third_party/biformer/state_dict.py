"""Official BiFormer state_dict <-> `projects.biformer.BiFormer` parameters.

Layouts: torch Conv2d weights are OIHW (depthwise: (C, 1, k, k)) and become HWIO kernels;
nn.Linear weights are (out, in) and become (in, out) kernels; LayerNorm / BatchNorm `weight`
is our `scale`; BN running stats are our `mean` / `var`. `*.num_batches_tracked` is accepted
and ignored (it does not enter eval and is not required).

Key layouts (shared/specs/vision.md §4): legacy `BiFormer` -
`downsample_layers.0.{0,1,3,4}` (conv, BN, [GELU], conv, BN), `downsample_layers.{i}.{0,1}`
(conv, BN), `stages.{s}.{b}.{pos_embed, norm1, attn.*, norm2, mlp.{0,3}, gamma1, gamma2}`,
`norm`, `head`. BRA attention is `attn.{qkv.qkv, wo, lepe}`, stage-4 attention
`attn.{qkv, proj, lepe}`. `BiFormerSTL` - `downsample_layers.0.{0 conv,1 BN}`,
`downsample_layers.{i}.{0 BN,1 conv}`, `stages.{s}.blocks.{b}.{norm1, attn.*, norm2,
mlp.{0,2}}`, `norm`, `head`.
"""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from projects.biformer.model import BiFormer
from projects.biformer.config import BiFormerConfig

Path = tuple
# kind -> the (torch suffix, our leaf name) pairs of one torch module.
_LEAVES = {
    "conv": (("weight", "kernel"), ("bias", "bias")),
    "linear": (("weight", "kernel"), ("bias", "bias")),
    "linear_nobias": (("weight", "kernel"),),
    "ln": (("weight", "scale"), ("bias", "bias")),
    "bn": (("weight", "scale"), ("bias", "bias"), ("running_mean", "mean"),
           ("running_var", "var")),
}


def _modules(cfg: BiFormerConfig) -> list[tuple[str, Path, str]]:
  """(torch module name, our module path, kind) for every parameterised module."""
  mods = []
  if cfg.layout == "legacy":
    stem = ("downsample_layers", 0)
    mods += [("downsample_layers.0.0", stem + ("conv1",), "conv"),
             ("downsample_layers.0.1", stem + ("bn1",), "bn"),
             ("downsample_layers.0.3", stem + ("conv2",), "conv"),
             ("downsample_layers.0.4", stem + ("bn2",), "bn")]
    for i in range(1, 4):
      mods += [(f"downsample_layers.{i}.0", ("downsample_layers", i, "conv"), "conv"),
               (f"downsample_layers.{i}.1", ("downsample_layers", i, "norm"), "bn")]
  else:
    mods += [("downsample_layers.0.0", ("downsample_layers", 0, "conv"), "conv"),
             ("downsample_layers.0.1", ("downsample_layers", 0, "norm"), "bn")]
    for i in range(1, 4):
      mods += [(f"downsample_layers.{i}.0", ("downsample_layers", i, "bn"), "bn"),
               (f"downsample_layers.{i}.1", ("downsample_layers", i, "conv"), "conv")]
  for s in range(4):
    topk = cfg.topks[s]
    for b in range(cfg.depth[s]):
      t = f"stages.{s}.{b}" if cfg.layout == "legacy" else f"stages.{s}.blocks.{b}"
      p = ("stages", s, b)
      if cfg.layout == "legacy" and cfg.before_attn_dwconv > 0:
        mods.append((f"{t}.pos_embed", p + ("pos_embed",), "conv"))
      mods += [(f"{t}.norm1", p + ("norm1",), "ln"), (f"{t}.norm2", p + ("norm2",), "ln")]
      if topk > 0:
        mods += [(f"{t}.attn.qkv.qkv", p + ("attn", "qkv"), "linear"),
                 (f"{t}.attn.wo", p + ("attn", "wo"), "linear")]
      else:
        mods += [(f"{t}.attn.qkv", p + ("attn", "qkv"), "linear_nobias"),
                 (f"{t}.attn.proj", p + ("attn", "proj"), "linear")]
      if cfg.side_dwconv > 0 and topk != -1:
        mods.append((f"{t}.attn.lepe", p + ("attn", "lepe"), "conv"))
      fc2 = "3" if cfg.layout == "legacy" else "2"  # legacy: Linear, Identity, GELU, Linear
      mods += [(f"{t}.mlp.0", p + ("mlp", "fc1"), "linear"),
               (f"{t}.mlp.{fc2}", p + ("mlp", "fc2"), "linear")]
  mods.append(("norm", ("norm",), "bn"))
  if cfg.num_classes > 0:
    mods.append(("head", ("head",), "linear"))
  return mods


def key_map(cfg: BiFormerConfig) -> dict[str, tuple[Path, str]]:
  """torch state_dict key -> (our variable path, kind) for every required key."""
  out = {}
  for tname, path, kind in _modules(cfg):
    for suffix, leaf in _LEAVES[kind]:
      out[f"{tname}.{suffix}"] = (path + (leaf,), kind)
  if cfg.layout == "legacy" and cfg.layer_scale_init_value > 0:
    for s in range(4):
      for b in range(cfg.depth[s]):
        for g in ("gamma1", "gamma2"):
          out[f"stages.{s}.{b}.{g}"] = (("stages", s, b, g), "vector")
  return out


def optional_keys(cfg: BiFormerConfig) -> set[str]:
  """Keys accepted but not used: BN `num_batches_tracked`."""
  return {f"{tname}.num_batches_tracked" for tname, _, kind in _modules(cfg) if kind == "bn"}


def _to_ours(arr: np.ndarray, kind: str, leaf: str) -> np.ndarray:
  if leaf == "kernel" and kind == "conv":
    return arr.transpose(2, 3, 1, 0)  # OIHW -> HWIO
  if leaf == "kernel":
    return arr.T  # (out, in) -> (in, out)
  return arr


def _to_torch(arr: np.ndarray, kind: str, leaf: str) -> np.ndarray:
  if leaf == "kernel" and kind == "conv":
    return arr.transpose(3, 2, 0, 1)  # HWIO -> OIHW
  if leaf == "kernel":
    return arr.T
  return arr


def check_keys(cfg: BiFormerConfig, keys) -> None:
  """Raises ValueError listing every unknown and every missing key."""
  expected = key_map(cfg)
  keys = set(keys)
  unknown = sorted(keys - set(expected) - optional_keys(cfg))
  missing = sorted(set(expected) - keys)
  if unknown or missing:
    raise ValueError(f"state_dict does not match the BiFormer config: {len(unknown)} unknown "
                     f"keys {unknown}; {len(missing)} missing keys {missing}.")


def load_state_dict(model: BiFormer, state_dict: Mapping[str, np.ndarray]) -> BiFormer:
  """Copies an official state_dict into `model` (in place) and returns it.

  `model` may be abstract (built under `nnx.eval_shape`): every parameter and BN statistic
  is then created from the state_dict, which avoids a random initialisation.

  Raises:
    ValueError: unknown or missing keys (all listed), or a shape mismatch.
  """
  cfg = model.config
  check_keys(cfg, state_dict.keys())
  mapping = key_map(cfg)
  state = nnx.state(model)
  flat = dict(state.flat_state())
  unmapped = sorted(set(flat) - {p for p, _ in mapping.values()})
  if unmapped:
    raise ValueError(f"internal: model variables with no state_dict key: {unmapped}")
  for key, (path, kind) in mapping.items():
    var = flat[path]
    arr = _to_ours(np.asarray(state_dict[key]), kind, path[-1])
    if arr.shape != tuple(var.shape):
      raise ValueError(f"state_dict[{key!r}] has shape {np.shape(state_dict[key])}; the config "
                       f"needs {tuple(var.shape)} for {'/'.join(map(str, path))} (ours, "
                       "after layout conversion).")
    var.set_value(jnp.asarray(arr, dtype=var.get_value().dtype))
  nnx.update(model, state)
  abstract = sorted(p for p, v in nnx.state(model).flat_state()
                    if isinstance(v.get_value(), jax.ShapeDtypeStruct))
  if abstract:
    raise ValueError(f"internal: variables not set by the state_dict: {abstract}")
  return model


def to_state_dict(model: BiFormer) -> dict[str, np.ndarray]:
  """Exports `model` in the official key layout (the inverse of `load_state_dict`)."""
  flat = dict(nnx.state(model).flat_state())
  out = {}
  for key, (path, kind) in key_map(model.config).items():
    out[key] = _to_torch(np.asarray(flat[path].get_value()), kind, path[-1])
  return out
