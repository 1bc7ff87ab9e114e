"""Causal sequence mixers by name: one registry, so a task can swap the attention of a model.

A mixer maps x [B, T, C] -> (y [B, T, C], aux_loss scalar), with the house call convention
`__call__(x, *, train=False, rngs=None)`. It owns its projections, so mixers with different
internals (shared QK, k-means state, an estimator) compare at the same call site. `aux_loss`
is what the mixer adds to the task loss (routing's clustering loss, SEA's estimator loss);
0 for the others.

  build(name, spec, options, rngs)   a mixer; `options` are its own knobs (a dict), checked by
                                     its factory: an unknown option names itself and the allowed.
  register(name, factory)            factory(spec, options, rngs) -> mixer.
  names()                            every registered name (projects' included).

Registered here:
  dense   full causal softmax attention (common.layers.attention.causal_attention: exact, by
          query chunks): every query reads every earlier key; the baseline every sparse mixer
          is measured against.
  local   causal sliding-window attention through common.kernels.block_sparse_attention:
          query block i reads its own block and the `window // block - 1` blocks before it,
          i.e. between window - block and window earlier keys. Options: window (256), block (64).

Projects register theirs in `projects/<name>/mixers.py`, found on first use of an unknown name
(so common/ never imports a project): routing_transformer 'routing', sea 'sea' and 'performer',
biformer 'region' (bi-level routing in 1-D).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common import registry
from common.kernels import block_sparse_attention as bsa
from common.layers.attention import causal_attention
from common.layers.linear import Linear


@dataclasses.dataclass(frozen=True)
class MixerSpec:
  """What every mixer is built from; the rest are its own options."""
  hidden: int
  num_heads: int
  seq_len: int
  attention_impl: str = "auto"   # common.kernels impl, for mixers that run a kernel
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @property
  def head_dim(self) -> int:
    return self.hidden // self.num_heads


Factory = Callable[[MixerSpec, dict, nnx.Rngs], nnx.Module]
_FACTORIES: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> Factory:
  """Makes `name` available to `build`. A second module claiming the name is an error."""
  return registry.claim(_FACTORIES, "mixer", name, factory)


def names() -> tuple[str, ...]:
  registry.import_project_modules("mixers")   # the projects' mixers register on import
  return tuple(sorted(_FACTORIES))


def build(name: str, spec: MixerSpec, options: Mapping[str, Any] | None, rngs: nnx.Rngs):
  factory = registry.find(_FACTORIES, name, "mixers")
  if factory is None:
    raise ValueError(f"config.model.mixer={name!r} is not a registered mixer; choose one of "
                     f"{names()}.")
  if spec.hidden % spec.num_heads:
    raise ValueError(f"config.model.hidden={spec.hidden} is not divisible by num_heads="
                     f"{spec.num_heads}.")
  return factory(spec, dict(options or {}), rngs)


def take_options(name: str, options: dict, defaults: Mapping[str, Any]) -> dict:
  """`defaults` updated by `options`; an option the mixer does not have is an error."""
  unknown = sorted(set(options) - set(defaults))
  if unknown:
    raise ValueError(f"config.model.mixer_options has {unknown}, which mixer {name!r} does not "
                     f"take; its options: {sorted(defaults)}.")
  return {**defaults, **options}


class Projections(nnx.Module):
  """q, k, v [B, H, T, D] from x and the output projection back to C: what attention mixers share."""

  def __init__(self, spec: MixerSpec, *, rngs: nnx.Rngs, num_kv: int = 3):
    def dense(n_in, n_out, axes):
      return Linear(n_in, n_out, use_bias=False, kernel_axes=axes,
                    kernel_init=nnx.initializers.lecun_normal(), dtype=spec.dtype,
                    param_dtype=spec.param_dtype, rngs=rngs)
    self.spec = spec
    self.wqkv = dense(spec.hidden, num_kv * spec.hidden, ("embed", "heads"))
    self.wo = dense(spec.hidden, spec.hidden, ("heads", "embed"))

  def split(self, x: jax.Array) -> list[jax.Array]:
    b, t, _ = x.shape
    h, d = self.spec.num_heads, self.spec.head_dim
    parts = jnp.split(self.wqkv(x), self.wqkv.out_features // self.spec.hidden, axis=-1)
    return [p.reshape(b, t, h, d).transpose(0, 2, 1, 3) for p in parts]

  def merge(self, o: jax.Array) -> jax.Array:
    b, h, t, d = o.shape
    return self.wo(o.transpose(0, 2, 1, 3).reshape(b, t, h * d))


ZERO = jnp.zeros((), jnp.float32)


class DenseAttention(nnx.Module):
  """Full causal softmax attention: the layer library's causal_attention, exact, by query chunks
  that skip the keys after their last row. At T = 2048 on XLA:CPU its forward+backward takes half
  the time of one masked [T, T] pass, which itself beat `jax.nn.dot_product_attention` by 1.6x."""

  def __init__(self, spec: MixerSpec, options: dict, rngs: nnx.Rngs):
    take_options("dense", options, {})
    self.proj = Projections(spec, rngs=rngs)

  def __call__(self, x, *, train: bool = False, rngs=None):
    q, k, v = self.proj.split(x)
    swap = lambda a: a.transpose(0, 2, 1, 3)  # causal_attention is [B, T, H, D]
    o = causal_attention(swap(q), swap(k), swap(v), scale=q.shape[-1] ** -0.5)
    return self.proj.merge(swap(o)), ZERO


def band_blocks(num_blocks: int, lookback: int) -> np.ndarray:
  """int32 [nb, lookback + 1]: block i reads blocks i - lookback .. i (-1 marks none)."""
  blocks = np.arange(num_blocks)[:, None] + np.arange(-lookback, 1)[None, :]
  return np.where(blocks >= 0, blocks, -1).astype(np.int32)


class LocalAttention(nnx.Module):
  """Causal sliding-window attention in blocks, through the block-sparse kernel."""

  def __init__(self, spec: MixerSpec, options: dict, rngs: nnx.Rngs):
    o = take_options("local", options, {"window": 256, "block": 64})
    if o["window"] % o["block"] or spec.seq_len % o["block"]:
      raise ValueError(f"mixer 'local': window={o['window']} and seq_len={spec.seq_len} must "
                       f"be multiples of block={o['block']}.")
    self.block, self.lookback = o["block"], o["window"] // o["block"] - 1
    self.impl = spec.attention_impl
    self.proj = Projections(spec, rngs=rngs)

  def __call__(self, x, *, train: bool = False, rngs=None):
    q, k, v = self.proj.split(x)
    b, h, t, _ = q.shape
    blocks = band_blocks(t // self.block, self.lookback)
    idx = jnp.broadcast_to(jnp.asarray(blocks), (b, h) + blocks.shape)
    o = bsa.block_sparse_attention(q, k, v, idx, block_q=self.block, block_k=self.block,
                                   causal=True, impl=self.impl)
    return self.proj.merge(o), ZERO


register("dense", DenseAttention)
register("local", LocalAttention)
