"""Official STViT state_dict (numpy arrays) -> projects.svit.STViT variables.

Torch layouts: Conv2d weight (O, I/groups, kh, kw) -> our HWIO; 1x1 convs and nn.Linear
(out, in) -> our (in, out); BatchNorm weight/bias/running_mean/running_var -> our
scale/bias/mean/var; layer-scale gamma (1, C, 1, 1) -> (C,).

The refine/MHSA qkv (`attn.stoken_refine.qkv`, a 1x1 conv C -> 3C) emits its channels
interleaved per head: out channel o = head * 3 * hd + t * hd + d with t in (q, k, v)
(models/stvit.py L110: reshape(B, heads, 3 * hd, N).chunk(3, dim=2)); ours is
(C, 3, heads, hd). The attention output is concatenated head-major before `proj` (L117).

Skipped keys: `*.num_batches_tracked` (unused in eval) and the frozen identity kernels
`*.attn.unfold.weights` / `*.attn.fold.weights`, which our shift-based unfold/fold replaces;
the latter are checked to be the identity, since anything else would change the maths.
"""
from __future__ import annotations

from typing import Callable, Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

from projects.svit.config import STViTConfig

Array = np.ndarray
Transform = Callable[[Array], Array]

_BN = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
# Stem sequential indices: convs at 0/3/6/9, BNs at 2/5/8/11 (GELUs at 1/4/7/10), L353-370.
_STEM_CONV = (0, 3, 6, 9)
_STEM_BN = (2, 5, 8, 11)


def _same(t: Array) -> Array:
  return t


def _conv(t: Array) -> Array:
  return t.transpose(2, 3, 1, 0)  # OIHW -> HWIO


def _pointwise(t: Array) -> Array:
  return t.reshape(t.shape[0], -1).T  # (O, I, 1, 1) or (O, I) -> (I, O)


def _gamma(t: Array) -> Array:
  return t.reshape(-1)


def _qkv_kernel(heads: int) -> Transform:
  def f(t):
    w = t.reshape(t.shape[0], -1)  # (3C, C)
    c = w.shape[1]
    return w.reshape(heads, 3, c // heads, c).transpose(3, 1, 0, 2)  # -> (C, 3, heads, hd)
  return f


def _qkv_bias(heads: int) -> Transform:
  def f(t):
    return t.reshape(heads, 3, -1).transpose(1, 0, 2)  # -> (3, heads, hd)
  return f


def _proj_kernel(heads: int) -> Transform:
  def f(t):
    w = _pointwise(t)  # (C_in head-major, C_out)
    return w.reshape(heads, w.shape[0] // heads, w.shape[1])
  return f


def _conv_bn(path: tuple, conv: str, bn: str) -> tuple[str, Transform]:
  """(conv|norm, leaf) inside a ConvBN -> torch key of the conv or the BN."""
  part, leaf = path
  if part == "conv":
    return f"{conv}.{'weight' if leaf == 'kernel' else 'bias'}", (
        _conv if leaf == "kernel" else _same)
  return f"{bn}.{_BN[leaf]}", _same


def _block_source(rest: tuple, prefix: str, heads: int) -> tuple[str, Transform]:
  mod, leaf = rest[0], rest[-1]
  if mod == "pos_embed":
    return f"{prefix}.pos_embed.conv.{'weight' if leaf == 'kernel' else 'bias'}", (
        _conv if leaf == "kernel" else _same)
  if mod == "norm1":
    return f"{prefix}.norm1.norm.{'weight' if leaf == 'scale' else 'bias'}", _same
  if mod == "norm2":
    return f"{prefix}.norm2.{_BN[leaf]}", _same
  if mod in ("gamma_1", "gamma_2"):
    return f"{prefix}.{mod}", _gamma
  if mod == "mlp":
    sub = rest[1]
    if sub == "dwconv":
      return f"{prefix}.mlp2.conv.conv.{'weight' if leaf == 'kernel' else 'bias'}", (
          _conv if leaf == "kernel" else _same)
    return f"{prefix}.mlp2.{sub}.{'weight' if leaf == 'kernel' else 'bias'}", (
        _pointwise if leaf == "kernel" else _same)
  if mod == "attn" and rest[1] == "stoken_refine":
    base = f"{prefix}.attn.stoken_refine"
    return {
        "qkv_kernel": (f"{base}.qkv.weight", _qkv_kernel(heads)),
        "qkv_bias": (f"{base}.qkv.bias", _qkv_bias(heads)),
        "proj_kernel": (f"{base}.proj.weight", _proj_kernel(heads)),
        "proj_bias": (f"{base}.proj.bias", _same),
    }[leaf]
  raise KeyError(rest)


def source_of(path: tuple, config: STViTConfig) -> tuple[str, Transform]:
  """Maps one of our flat variable paths to (official key, torch -> ours transform)."""
  head, leaf = path[0], path[-1]
  if head == "patch_embed":  # ("patch_embed", "layers", i, "conv"|"norm", leaf)
    i = path[2]
    return _conv_bn(path[3:], f"patch_embed.proj.{_STEM_CONV[i]}",
                    f"patch_embed.proj.{_STEM_BN[i]}")
  if head == "layers":
    s = path[1]
    if path[2] == "downsample":
      prefix = f"layers.{s}.downsample.proj"
      return _conv_bn(path[3:], f"{prefix}.0", f"{prefix}.1")
    if path[2] == "blocks":
      return _block_source(path[4:], f"layers.{s}.blocks.{path[3]}", config.num_heads[s])
  if head == "proj":
    return f"proj.{'weight' if leaf == 'kernel' else 'bias'}", (
        _pointwise if leaf == "kernel" else _same)
  if head == "norm":
    return f"norm.{_BN[leaf]}", _same
  if head == "head":
    return f"head.{'weight' if leaf == 'kernel' else 'bias'}", (
        _pointwise if leaf == "kernel" else _same)
  raise KeyError(path)


def _is_skipped(key: str) -> bool:
  return key.endswith(".num_batches_tracked") or key.endswith(
      (".attn.unfold.weights", ".attn.fold.weights"))


def _check_identity_kernels(state_dict: Mapping[str, Array]) -> None:
  eye = np.eye(9, dtype=np.float32).reshape(9, 1, 3, 3)
  bad = [k for k, v in state_dict.items()
         if k.endswith((".attn.unfold.weights", ".attn.fold.weights"))
         and (np.shape(v) != eye.shape or not np.array_equal(np.asarray(v), eye))]
  if bad:
    raise ValueError(f"frozen unfold/fold kernels are not the 3x3 identity (eye(9)) in {bad}; "
                     "the port implements them as fixed shifts and cannot represent others.")


def load_state_dict(model: nnx.Module, state_dict: Mapping[str, Array]) -> None:
  """Copies an official state_dict into `model` (in place; abstract models work too).

  Raises:
    ValueError: listing unknown keys, missing keys and shape mismatches together.
  """
  config = model.config
  flat = nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat)))
  used, missing, mismatched, updates = set(), [], [], []
  for path, var in flat:
    key, fn = source_of(tuple(path), config)
    if key not in state_dict:
      missing.append(key)
      continue
    used.add(key)
    value = fn(np.asarray(state_dict[key]))
    if tuple(value.shape) != tuple(var.shape):
      mismatched.append(f"{key}: {tuple(np.shape(state_dict[key]))} -> {tuple(value.shape)}, "
                        f"expected {tuple(var.shape)}")
      continue
    updates.append((path, var, value))
  unknown = sorted(k for k in state_dict if k not in used and not _is_skipped(k))
  problems = []
  if unknown:
    problems.append(f"unknown keys ({len(unknown)}): {unknown}")
  if missing:
    problems.append(f"missing keys ({len(missing)}): {sorted(missing)}")
  if mismatched:
    problems.append(f"shape mismatches ({len(mismatched)}): {mismatched}")
  if problems:
    raise ValueError("state_dict does not match the STViT config: " + "; ".join(problems))
  _check_identity_kernels(state_dict)
  # `replace` keeps each variable's metadata (logical partitioning) and only swaps the value.
  nnx.update(model, nnx.from_flat_state(
      [(path, var.replace(jnp.asarray(value, dtype=var.dtype))) for path, var, value in updates]))
