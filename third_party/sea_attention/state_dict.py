"""PerlinAttention.state_dict() -> SEAAttention parameters.

Layouts: nn.Linear weight is (out, in) -> our kernel (in, out). CausalConv2d weight is
(out, in, 2k-1, k) with only rows [:k] live (its `weight_mask`); our nnx.Conv kernel is HWIO
(k, k, in, out) holding the live rows only (see projects/sea/estimator.py).
"""
from __future__ import annotations

from typing import Callable, Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

# Keys present in the official state_dict that the causal reference path never reads
# (attention.py PerlinAttention; listed as unused in shared/golden/README.md "sea"):
IGNORED_KEYS = frozenset({
    # Non-causal positional code (the causal path uses v_eye_learned_causal).
    "v_eye_learned",
    # eye(H); only used by a commented-out head-embedding variant.
    "attention_predictor_enc_head_embd",
    # attention_predictor_enc_per_layer=False in the ported configuration.
    "attention_predictor_enc_per_layer.0.weight", "attention_predictor_enc_per_layer.0.bias",
    "attention_predictor_enc_per_layer.1.weight", "attention_predictor_enc_per_layer.1.bias",
    # Only used by context_output_method='norm'; 'mix' is ported.
    "norm_performer.weight", "norm_performer.bias", "norm_partial.weight", "norm_partial.bias",
    "norm_random.weight", "norm_random.bias", "norm.weight", "norm.bias",
    # Training-time redraw counter of ProjectionUpdater (never redraws in forward).
    "performer_proj_updater.calls_since_last_redraw",
})
# Buffers that are read only to check them: the duplicate of the Performer projection, and the
# causal conv masks (must be the standard "top k rows live" pattern our convs assume).
_DUPLICATES = {"performer_proj_updater.instance.projection_matrix": "performer.projection_matrix"}
_CONVS = {
    "attention_predictor_cnn.1.module.net.0.module": ("decoder", "conv1"),
    "attention_predictor_cnn.1.module.net.2.module": ("decoder", "conv2"),
    "attention_predictor_cnn.1.module.net.5.module": ("decoder", "conv_out"),
}


def _linear_kernel(w: np.ndarray) -> np.ndarray:
  return w.T


def _live_conv_kernel(w: np.ndarray) -> np.ndarray:
  k = w.shape[-1]
  if w.shape[-2] != 2 * k - 1:
    raise ValueError(f"causal conv weight shape {w.shape} is not allowed: expected "
                     f"(out, in, 2k-1, k) with k={k}.")
  return np.transpose(w[:, :, :k, :], (2, 3, 1, 0))


def param_map() -> dict[str, tuple[tuple[str, ...], Callable[[np.ndarray], np.ndarray]]]:
  """Official key -> (attribute path in SEAAttention, layout transform)."""
  ident = lambda x: x  # noqa: E731
  m = {
      "v_eye_learned_causal": (("position_code",), lambda x: x.reshape(x.shape[-2:])),
      "performer.projection_matrix": (("performer", "projection"), ident),
      "attention_predictor_enc.0.weight": (("encoder", "linear", "kernel"), _linear_kernel),
      "attention_predictor_enc.0.bias": (("encoder", "linear", "bias"), ident),
      "attention_predictor_enc.1.weight": (("encoder", "norm", "scale"), ident),
      "attention_predictor_enc.1.bias": (("encoder", "norm", "bias"), ident),
      "attention_predictor_dec_row.0.weight": (("decoder", "dec_row", "kernel"), _linear_kernel),
      "attention_predictor_dec_row.0.bias": (("decoder", "dec_row", "bias"), ident),
      "attention_predictor_cnn.0.module.weight": (("decoder", "norm_in", "scale"), ident),
      "attention_predictor_cnn.0.module.bias": (("decoder", "norm_in", "bias"), ident),
      "attention_predictor_cnn.2.module.weight": (("decoder", "norm_out", "scale"), ident),
      "attention_predictor_cnn.2.module.bias": (("decoder", "norm_out", "bias"), ident),
      "attention_predictor_dec_scaler.0.weight": (("gates", "kernel"), _linear_kernel),
      "attention_predictor_dec_scaler.0.bias": (("gates", "bias"), ident),
  }
  for prefix, path in _CONVS.items():
    m[f"{prefix}.weight"] = (path + ("kernel",), _live_conv_kernel)
    m[f"{prefix}.bias"] = (path + ("bias",), ident)
  return m


def _check_buffers(state_dict: Mapping[str, np.ndarray]) -> None:
  for dup, main in _DUPLICATES.items():
    if not np.array_equal(np.asarray(state_dict[dup]), np.asarray(state_dict[main])):
      raise ValueError(f"state_dict[{dup!r}] differs from state_dict[{main!r}]; the official "
                       "module shares one tensor, so the checkpoint is inconsistent.")
  for prefix in _CONVS:
    w_mask = np.asarray(state_dict[f"{prefix}.weight_mask"])
    k = w_mask.shape[-1]
    expected = np.zeros_like(w_mask)
    expected[:, :, :k, :] = 1
    if not np.array_equal(w_mask, expected):
      key = f"{prefix}.weight_mask"
      raise ValueError(f"state_dict[{key!r}] is not the causal pattern (top {k} kernel rows "
                       "live); only that pattern is supported.")


def load_state_dict(model: nnx.Module, state_dict: Mapping[str, np.ndarray]) -> None:
  """Copies an official PerlinAttention state_dict into `model` (a projects.sea SEAAttention).

  `model` may be abstract (built under nnx.eval_shape): every one of its variables is set.

  Raises:
    ValueError: listing every missing or unknown key, or naming a shape mismatch, or naming
      model variables that no key fills.
  """
  mapping = param_map()
  model_paths = {tuple(str(p) for p in path) for path, _ in nnx.to_flat_state(nnx.state(model))}
  unfilled = sorted(".".join(p) for p in model_paths - {path for path, _ in mapping.values()})
  if unfilled:
    raise ValueError(f"model variables {unfilled} have no state_dict key; the model is not the "
                     "SEAAttention this converter maps.")
  checked = set(_DUPLICATES) | {f"{p}.weight_mask" for p in _CONVS}
  expected = set(mapping) | checked
  keys = set(state_dict)
  missing = sorted(expected - keys)
  unknown = sorted(keys - expected - IGNORED_KEYS)
  if missing or unknown:
    raise ValueError(f"state_dict does not match PerlinAttention (causal): missing keys {missing}; "
                     f"unknown keys {unknown}.")
  _check_buffers(state_dict)
  for key, (path, transform) in mapping.items():
    target = model
    for name in path:
      target = getattr(target, name)
    value = transform(np.asarray(state_dict[key]))
    if value.shape != target.shape:
      raise ValueError(f"state_dict[{key!r}] has shape {np.asarray(state_dict[key]).shape}, which "
                       f"converts to {value.shape}; {'.'.join(path)} expects {target.shape}.")
    target.value = jnp.asarray(value, dtype=target.dtype)
