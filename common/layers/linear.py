"""Linear: y = x @ kernel + bias over the last axis, with logical axis names on its params.

Parameters are `kernel` (in, out) and `bias` (out,), the names and layout of `nnx.Linear`, so
checkpoint paths and converters (torch weights are (out, in): transpose) stay as they were.
The computation is the one of `nnx.Linear` (inputs and params promoted to `dtype`, one
`dot_general`), so switching from it changes no number.

Initialisers: the default (None) is torch's (`initializers.torch_uniform`: U(+-1/sqrt(in)) on
both kernel and bias), the right default for the torch ports that dominate here. Pass any
`init(key, shape, dtype)` instead: `initializers.trunc_normal(0.02)` (timm),
`nnx.initializers.normal(0.02)` (HF), `nnx.initializers.lecun_normal()` (Flax),
`nnx.initializers.zeros` (bias).
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import dtypes as nnx_dtypes

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.layers import validation
from common.layers.initializers import Initializer, torch_uniform
from common.layers.keys import param


class Linear(nnx.Module):
  """[..., in_features] -> [..., out_features].

  Args:
    in_features, out_features: widths.
    use_bias: add a bias.
    kernel_axes: logical axis names of the (in, out) kernel, e.g. ('embed', 'mlp'); the bias
      takes `kernel_axes[-1]`. Default: replicated (None, None).
    kernel_init, bias_init: initialisers; None is torch's default for both (see module doc).
    precision: passed to `dot_general`.
    dtype: compute dtype (None: promoted from inputs and params); param_dtype: param dtype.
    rngs: anything with `.params()` (an `nnx.Rngs` or a `common.layers.keys.KeyStream`).
  """

  def __init__(self, in_features: int, out_features: int, *, use_bias: bool = True,
               kernel_axes: Sequence[str | None] = (None, None),
               kernel_init: Initializer | None = None, bias_init: Initializer | None = None,
               precision: Any = None, dtype: Any = None, param_dtype: Any = jnp.float32,
               rngs: Any):
    validation.check_positive("in_features", in_features)
    validation.check_positive("out_features", out_features)
    if len(kernel_axes) != 2:
      raise ValueError(f"kernel_axes={tuple(kernel_axes)} must name 2 axes (in, out).")
    self.in_features, self.out_features = in_features, out_features
    self.precision = precision
    self.dtype = dtype
    default = torch_uniform(in_features)
    self.kernel = param(kernel_init or default, kernel_axes, rngs, (in_features, out_features),
                        param_dtype)
    self.bias = (param(bias_init or default, tuple(kernel_axes)[-1:], rngs, (out_features,),
                       param_dtype) if use_bias else None)

  def __call__(self, x: jax.Array, columns: slice | None = None) -> jax.Array:
    """x [..., in] -> [..., out], or only the output features `columns` (a slice), which
    computes nothing for the others: for a layer that reads part of a fused projection."""
    kernel = self.kernel[...]
    bias = self.bias[...] if self.bias is not None else None
    if columns is not None:
      kernel = kernel[:, columns]
      bias = None if bias is None else bias[columns]
    x, kernel, bias = nnx_dtypes.promote_dtype((x, kernel, bias), dtype=self.dtype)
    y = jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())),
                            precision=self.precision)
    if bias is not None:
      y += jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))
    return y
