"""Official Monet state_dict -> projects.monet parameters.

Torch `nn.Linear.weight` is (out, in); our kernels are (in, ...) with the flat output axis unflattened
exactly as the official code does (`unflatten(-1, (H, -1))` / `(E, -1)`, i.e. flat index h*E + e and
i*m + r; spec shared/specs/experts.md §1.11):

  router.w{1,2}.weight (H*E, d)        -> router.w{1,2}   (d, H, E)
  router.norm{1,2}.running_mean/var (H,) -> router.norm{1,2}.mean/var; num_batches_tracked is dropped
  moe.u.weight (E*m, d), u.bias (E*m,)  -> moe.u (d, E, m), moe.u_bias (E, m)    (HD; VD u1/u2, m/2)
  moe.v.weight (d, E*m)                 -> moe.v (E, m, d)                       (HD; VD v11..v22, d/2)
  moe.b (E, d)                          -> moe.b                                 (HD; VD b1/b2)
  self_attn.{q,k,v}_proj.weight (H*D, d) -> attn.{q,k,v} (d, H, D); o_proj (d, H*D) -> attn.o (H, D, d)
  lm_head.weight (V, d)                 -> lm_head (d, V)     (untied)
  *layernorm.weight, model.norm.weight  -> *layernorm.scale, norm.scale   (common RMSNorm)
"""
from __future__ import annotations

from typing import Callable, Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

from projects.monet.config import MonetConfig
from projects.monet.model import MonetForCausalLM

Path = tuple
# Buffers that are in the torch state_dict but carry nothing for inference. `num_batches_tracked`
# only matters for momentum=None BatchNorm, which Monet does not use; `rotary_emb.inv_freq` appears
# in checkpoints written by transformers versions that kept it persistent and is recomputed here.
_DROPPED_SUFFIXES = ("num_batches_tracked", "rotary_emb.inv_freq")


def _mapping(cfg: MonetConfig) -> dict[str, tuple[Path, tuple[int, ...], Callable[[np.ndarray], np.ndarray]]]:
  """torch key -> (our variable path, expected torch shape, torch array -> our array)."""
  d, v = cfg.hidden_size, cfg.vocab_size
  nh, kvh, hd = cfg.num_attention_heads, cfg.kv_heads, cfg.head_dim
  h, e, m = cfg.moe_heads, cfg.moe_experts, cfg.moe_dim
  ident = lambda x: x
  in_kernel = lambda *shape: (lambda w: w.T.reshape(shape))
  out = {
      "model.embed_tokens.weight": (("embed_tokens",), (v, d), ident),
      "model.norm.weight": (("norm", "scale"), (d,), ident),
      "lm_head.weight": (("lm_head",), (v, d), lambda w: w.T),
  }
  for l in range(cfg.num_hidden_layers):
    p, ours = f"model.layers.{l}.", ("layers", l)
    out[p + "input_layernorm.weight"] = (ours + ("input_layernorm", "scale"), (d,), ident)
    out[p + "post_attention_layernorm.weight"] = (ours + ("post_attention_layernorm", "scale"), (d,), ident)
    for name, heads in (("q", nh), ("k", kvh), ("v", kvh)):
      out[p + f"self_attn.{name}_proj.weight"] = (ours + ("attn", name), (heads * hd, d),
                                                  in_kernel(d, heads, hd))
    out[p + "self_attn.o_proj.weight"] = (ours + ("attn", "o"), (d, nh * hd), in_kernel(nh, hd, d))
    if cfg.has_router(l):
      for s in ("1", "2"):
        out[p + f"router.w{s}.weight"] = (ours + ("router", "w" + s), (h * e, d), in_kernel(d, h, e))
        out[p + f"router.norm{s}.running_mean"] = (ours + ("router", "norm" + s, "mean"), (h,), ident)
        out[p + f"router.norm{s}.running_var"] = (ours + ("router", "norm" + s, "var"), (h,), ident)
    moe = ours + ("moe",)
    if cfg.moe_decompose == "horizontal":
      out[p + "moe.u.weight"] = (moe + ("u",), (e * m, d), in_kernel(d, e, m))
      out[p + "moe.u.bias"] = (moe + ("u_bias",), (e * m,), lambda b: b.reshape(e, m))
      out[p + "moe.v.weight"] = (moe + ("v",), (d, e * m), in_kernel(e, m, d))
      out[p + "moe.b"] = (moe + ("b",), (e, d), ident)
    else:
      mh, dh = m // 2, d // 2
      for s in ("1", "2"):
        out[p + f"moe.u{s}.weight"] = (moe + ("u" + s,), (e * mh, d), in_kernel(d, e, mh))
        out[p + f"moe.u{s}.bias"] = (moe + (f"u{s}_bias",), (e * mh,), lambda b: b.reshape(e, mh))
        out[p + f"moe.b{s}"] = (moe + ("b" + s,), (e, dh), ident)
      for name in ("v11", "v12", "v21", "v22"):
        out[p + f"moe.{name}.weight"] = (moe + (name,), (dh, e * mh), in_kernel(e, mh, dh))
  return out


def expected_torch_shapes(cfg: MonetConfig) -> dict[str, tuple[int, ...]]:
  """torch key -> shape of the tensors an official state_dict must hold (dropped buffers excluded)."""
  return {k: shape for k, (_, shape, _) in _mapping(cfg).items()}


def convert_state_dict(state_dict: Mapping[str, np.ndarray], cfg: MonetConfig) -> dict[Path, np.ndarray]:
  """Maps an official state_dict to {our variable path: array}.

  Raises:
    ValueError: listing every unknown key, missing key and shape mismatch together.
  """
  mapping = _mapping(cfg)
  given = set(state_dict)
  unknown = sorted(k for k in given - set(mapping) if not k.endswith(_DROPPED_SUFFIXES))
  missing = sorted(set(mapping) - given)
  bad_shapes = sorted(
      f"{k}: {tuple(np.shape(state_dict[k]))} (expected {mapping[k][1]})"
      for k in given & set(mapping) if tuple(np.shape(state_dict[k])) != mapping[k][1])
  if unknown or missing or bad_shapes:
    parts = []
    if unknown:
      parts.append(f"unknown keys ({len(unknown)}): {unknown}")
    if missing:
      parts.append(f"missing keys ({len(missing)}): {missing}")
    if bad_shapes:
      parts.append(f"shape mismatches ({len(bad_shapes)}): {bad_shapes}")
    raise ValueError(
        f"Monet state_dict does not match the config (moe_decompose={cfg.moe_decompose!r}, "
        f"num_hidden_layers={cfg.num_hidden_layers}, moe_groups={cfg.moe_groups}): " + "; ".join(parts))
  return {path: np.asarray(fn(np.asarray(state_dict[k]))) for k, (path, _, fn) in mapping.items()}


def load_state_dict(model: MonetForCausalLM, state_dict: Mapping[str, np.ndarray]) -> MonetForCausalLM:
  """Returns a copy of `model` (concrete or from nnx.eval_shape) holding the converted weights."""
  params = convert_state_dict(state_dict, model.config)
  graphdef, state = nnx.split(model)
  flat = nnx.to_flat_state(state)
  ours = {path for path, _ in flat}
  uncovered = sorted(map(str, ours - set(params)))
  if uncovered:  # a model/mapping drift inside this repo, not a user error
    raise ValueError(f"model variables without a state_dict source: {uncovered}")
  new = []
  for path, var in flat:
    arr, like = params[path], var.get_value()
    if tuple(arr.shape) != tuple(like.shape):
      raise ValueError(f"converted {path}: shape {arr.shape}, model expects {like.shape}.")
    new.append((path, var.replace(value=jnp.asarray(arr, dtype=like.dtype))))
  state = nnx.from_flat_state(new)
  return nnx.merge(graphdef, state)


def build_model(cfg: MonetConfig, state_dict: Mapping[str, np.ndarray]) -> MonetForCausalLM:
  """Builds the model for `cfg` without a random init and loads `state_dict` into it.

  Call it with train=False (the default) for inference: the routers then use the loaded running
  statistics.
  """
  abstract = nnx.eval_shape(lambda: MonetForCausalLM(cfg, rngs=nnx.Rngs(0)))
  return load_state_dict(abstract, state_dict)
