"""Conv2d on NHWC maps with torch's padding and init, and a fast exact depthwise path.

Parameters are `kernel` HWIO (kh, kw, in_features // groups, out_features) and `bias`
(out_features,), the names and layout of `nnx.Conv` (torch OIHW weights: transpose (2, 3, 1, 0)).

Padding is explicit, as torch gives it: an int p (p on every side), a pair (ph, pw), or
((top, bottom), (left, right)). Never 'SAME': for stride 2 on even inputs Flax's 'SAME' pads
(0, 1) where torch's `padding=k//2` pads (1, 1), which would shift every downsampled map. A causal
conv over the height (time) axis is `padding=(((k - 1) * dilation, 0), (pw, pw))`.

Depthwise convs (groups == in_features == out_features) are computed as the sum over kernel taps
of shifted inputs times a per-channel weight (`depthwise_conv2d`). XLA:CPU lowers the weight
gradient of a grouped `conv_general_dilated` to a dense C x C convolution and keeps only its
diagonal, C times the needed work (issue 15: 60% of an SViT-S step). The shifted sum is exact,
and XLA fuses it on every backend. Its backward is written out (`_shifted_conv_bwd`): the input
gradient is one more shifted sum, the weight gradient one reduction over all taps (autodiff of the
shifted sum took ~10x the forward on CPU). Every other conv uses `conv_general_dilated`, unless
`impl='shifted'`: then a dense conv runs as the same shifted sums (`narrow_conv2d`, each tap
adding every input channel's window times its row of weights). That pays only with few channels:
SEA's decoder convs (8 -> 8 channels, 3x3, on a [4096, 64] map) take 6 / 29 ms forward /
backward against XLA:CPU's 10 / 112 ms, whose weight gradient alone is ~100 ms there; at 16
channels the forward is already 2.7x slower than XLA's, and at the vision stems' 3 -> 32 the
backward 4x. `impl='xla'` forces `conv_general_dilated` for depthwise too.

`ConvBN` is the conv + BatchNorm unit (optionally with an activation between them) of the vision
ports' stems and downsampling layers.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import dtypes as nnx_dtypes

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.layers import activations, grad_barrier, validation
from common.layers.initializers import Initializer, torch_uniform
from common.layers.keys import param
from common.layers.norms import BatchNorm

IMPLS = ("auto", "xla", "shifted")
Padding = int | Sequence[int] | Sequence[Sequence[int]]

# The most C_in x C_out of a dense conv for which impl='shifted' measured faster than XLA:CPU's
# conv, forward + backward (2 CPU threads, module docstring): 8 x 8 3.5x at [1, 4096, 64], tied
# at [8, 56, 56]; 4 x 4 3.3x; 1 x 16 1.3x; 16 x 16 and 24 x 24 slower (1.4x, 1.9x).
SHIFTED_MAX_CHANNELS = 64


def few_channel_impl(in_features: int, out_features: int) -> str:
  """The impl for a dense (groups 1) conv: 'shifted' on CPU when C_in x C_out is at most
  SHIFTED_MAX_CHANNELS, else 'auto'. A model opts in with it (SEA's estimator); it is not
  'auto''s rule, so the few-channel stems of the vision demos keep XLA's summation order until
  their demos are measured again."""
  few = in_features * out_features <= SHIFTED_MAX_CHANNELS
  return "shifted" if few and jax.default_backend() == "cpu" else "auto"


def _pair(name: str, value: int | Sequence[int]) -> tuple[int, int]:
  if isinstance(value, int):
    return value, value
  value = tuple(value)
  if len(value) != 2 or not all(isinstance(v, int) for v in value):
    raise ValueError(f"{name}={value!r} must be an int or a pair of ints.")
  return value


def normalize_padding(padding: Padding) -> tuple[tuple[int, int], tuple[int, int]]:
  """int | (ph, pw) | ((top, bottom), (left, right)) -> ((top, bottom), (left, right))."""
  if isinstance(padding, str):
    raise ValueError(f"padding={padding!r}: give explicit torch-style padding (an int, (ph, pw) "
                     "or ((top, bottom), (left, right))), not a string.")
  if isinstance(padding, int):
    return (padding, padding), (padding, padding)
  padding = tuple(padding)
  if len(padding) == 2 and all(isinstance(p, int) for p in padding):
    return (padding[0], padding[0]), (padding[1], padding[1])
  if len(padding) == 2:
    return _pair("padding[0]", padding[0]), _pair("padding[1]", padding[1])
  raise ValueError(f"padding={padding!r} must be an int, (ph, pw) or ((top, bottom), "
                   "(left, right)).")


def depthwise_conv2d(x: jax.Array, kernel: jax.Array, *, strides: tuple[int, int] = (1, 1),
                     padding: Padding = 0, dilation: tuple[int, int] = (1, 1)) -> jax.Array:
  """Depthwise conv [B, H, W, C] * [kh, kw, 1, C] as a sum of shifted, strided slices.

  Equals `conv_general_dilated(..., feature_group_count=C)`; the products are accumulated in at
  least float32 (as a conv accumulates) and the result has x's dtype. The backward pass is
  written out (`_shifted_conv_bwd`) rather than left to autodiff.
  """
  kh, kw, one, c = kernel.shape
  if one != 1 or x.shape[-1] != c:
    raise ValueError(f"depthwise kernel {kernel.shape} must be (kh, kw, 1, C) with "
                     f"C = x.shape[-1] = {x.shape[-1]}.")
  return _shifted_conv_checked(x, kernel, strides, padding, dilation, mix=False)


def narrow_conv2d(x: jax.Array, kernel: jax.Array, *, strides: tuple[int, int] = (1, 1),
                  padding: Padding = 0, dilation: tuple[int, int] = (1, 1)) -> jax.Array:
  """Dense conv [B, H, W, C_in] * [kh, kw, C_in, C_out] with few channels, as shifted sums.

  Each tap adds every input channel's window times that channel's row of weights (C_in
  broadcast products a tap), so it is meant for few channels (SHIFTED_MAX_CHANNELS), where
  XLA:CPU's convolution, and above all its weight gradient, run far below matmul speed. Values
  and dtypes as depthwise_conv2d; the backward is written out the same way.
  """
  kh, kw, cin, _ = kernel.shape
  if x.shape[-1] != cin:
    raise ValueError(f"conv kernel {kernel.shape} must be (kh, kw, C_in, C_out) with "
                     f"C_in = x.shape[-1] = {x.shape[-1]}.")
  return _shifted_conv_checked(x, kernel, strides, padding, dilation, mix=True)


def _shifted_conv_checked(x, kernel, strides, padding, dilation, *, mix):
  kh, kw = kernel.shape[:2]
  pads = normalize_padding(padding)
  (top, bottom), (left, right) = pads
  hp, wp = x.shape[1] + top + bottom, x.shape[2] + left + right
  if hp - dilation[0] * (kh - 1) <= 0 or wp - dilation[1] * (kw - 1) <= 0:
    raise ValueError(f"conv: a {kh}x{kw} kernel (dilation {dilation}) does not fit the "
                     f"padded input {hp}x{wp}.")
  return _shifted_conv(x, kernel, tuple(strides), pads, tuple(dilation), mix)


def _out_size(padded: int, k: int, stride: int, dilation: int) -> int:
  return (padded - dilation * (k - 1) - 1) // stride + 1


def _tap(xp: jax.Array, i: int, j: int, out_hw, strides, dilation) -> jax.Array:
  """The strided window of padded `xp` that kernel tap (i, j) multiplies."""
  (ho, wo), (sh, sw), (dh, dw) = out_hw, strides, dilation
  b, c = xp.shape[0], xp.shape[-1]
  return jax.lax.slice(xp, (0, i * dh, j * dw, 0),
                       (b, i * dh + sh * (ho - 1) + 1, j * dw + sw * (wo - 1) + 1, c),
                       (1, sh, sw, 1))


def _channel_windows(tap: jax.Array, mix: bool) -> list[jax.Array]:
  """What one tap multiplies by one row of its weights: the whole window (depthwise: per
  channel), or with `mix` each input channel's window alone ([.., 1], times a C_out row)."""
  return [tap[..., c:c + 1] for c in range(tap.shape[-1])] if mix else [tap]


def _shifted_sum(xp: jax.Array, kernel: jax.Array, out_hw, strides, dilation,
                 mix: bool) -> jax.Array:
  kh, kw = kernel.shape[:2]
  y = None
  for i in range(kh):
    for j in range(kw):
      tap = _tap(xp, i, j, out_hw, strides, dilation)
      for window, weights in zip(_channel_windows(tap, mix), kernel[i, j]):
        y = window * weights if y is None else y + window * weights
  return y


def _accumulating(*arrays):
  dtype = jnp.promote_types(arrays[0].dtype, jnp.float32)
  return [a.astype(dtype) for a in arrays]


def _row_chunks(rows: int, taps: int) -> int:
  """How many chunks the weight gradient's reduce splits its `rows` (batch x output rows) into.

  Measured on 2 CPU threads (XLA:CPU, jax 0.10.2; interleaved, median of 15), SViT-S / BiFormer-T
  / ablation shapes: for 3x3 kernels, chunks of ~8 rows beat 8 chunks at every shape but the
  7x7 maps (equal within noise there), e.g. [8, 28, 28, 512] 9.1 -> 5.5 ms, [8, 14, 14, 1280]
  5.2 -> 2.4 ms, [8, 56, 56, 256] 23 -> 20 ms; for 5x5 (25 outputs) 8 chunks stayed as fast or
  faster, so they keep it. `taps` counts the reduce's outputs (x C_in for a narrow conv: SEA's
  decoder conv, 72 of them at [1, 4096, 64, 8]: 8 chunks 21 ms, 64 chunks 26 ms, 512 chunks
  88 ms).
  """
  if taps > 9:
    return math.gcd(rows, 8)
  divisors = [d for d in range(1, rows + 1) if rows % d == 0]
  return min(divisors, key=lambda d: abs(d - rows / 8))


def _unfused(x: jax.Array, mix: bool) -> jax.Array:
  """A narrow conv's inputs and outputs as buffers of their own: its C_in x kh x kw windows each
  read every input element, and XLA:CPU fused a producer into all of them (SEA's decoder, conv1
  -> ReLU -> conv2: forward 33 -> 467 ms), or the sum itself into its consumers (the decoder's
  forward 33 -> 58 ms with the inputs alone kept apart). Depthwise sums read each element
  kh x kw times and are left as they were."""
  return grad_barrier.fusion_barrier(x) if mix else x


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _shifted_conv(x, kernel, strides, pads, dilation, mix):
  xa, ka = _accumulating(_unfused(x, mix), kernel)
  xp = jnp.pad(xa, ((0, 0),) + pads + ((0, 0),))
  out_hw = tuple(_out_size(xp.shape[a + 1], kernel.shape[a], strides[a], dilation[a])
                 for a in (0, 1))
  return _unfused(_shifted_sum(xp, ka, out_hw, strides, dilation, mix).astype(x.dtype), mix)


def _shifted_conv_fwd(x, kernel, strides, pads, dilation, mix):
  return _shifted_conv(x, kernel, strides, pads, dilation, mix), (x, kernel)


def _shifted_conv_bwd(strides, pads, dilation, mix, res, g):
  """Why by hand: autodiff of the shifted sum gives one padded, full-size tensor per tap for the
  input gradient and one reduction pass per tap for the weight gradient, which on XLA:CPU cost
  ~10x the forward. Here dx is itself one shifted sum (the flipped kernel over the cotangent,
  dilated by the stride; a narrow conv's kernel also swaps C_in and C_out), and dk is one
  variadic reduction that reads x and g once for all taps.
  """
  x, kernel = res
  kh, kw, _, cout = kernel.shape
  (top, bottom), (left, right) = pads
  xa, ka, ga = _accumulating(_unfused(x, mix), kernel, _unfused(g, mix))
  b, ho, wo, _ = g.shape
  hp, wp = x.shape[1] + top + bottom, x.shape[2] + left + right
  # dx_padded[p] = sum_i g_dilated[p - i * d] k[i]: a correlation of the stride-dilated cotangent,
  # padded by (k - 1) * d, with the flipped kernel; then the forward's padding is cropped off.
  (sh, sw), (dh, dw) = strides, dilation
  lo_h, lo_w = (kh - 1) * dh, (kw - 1) * dw
  gd = jax.lax.pad(ga, jnp.zeros((), ga.dtype), (
      (0, 0, 0), (lo_h, hp - (ho - 1) * sh - 1, sh - 1), (lo_w, wp - (wo - 1) * sw - 1, sw - 1),
      (0, 0, 0)))
  flipped = ka[::-1, ::-1]
  if mix:  # C_in <-> C_out, by stacking columns: as a swapaxes, XLA:CPU fused the transpose into
    # the sum's loop, which then ran ~2.5x slower (SEA's decoder conv: 16 vs 6.8 ms).
    flipped = jnp.stack([flipped[:, :, :, o] for o in range(cout)], axis=2)
  dxp = _shifted_sum(gd, flipped, (hp, wp), (1, 1), dilation, mix)
  dx = jax.lax.slice(dxp, (0, top, left, 0), (b, top + x.shape[1], left + x.shape[2], x.shape[3]))
  # dk[i, j(, c)] = sum over (b, h, w) of tap (i, j) (its channel c) times g. One variadic reduce
  # over the rows (b, h) keeps (w, C_out) and reads every input once; the short sums over w and
  # the row chunks follow. The rows are split into chunks, kept as the reduce's outer output
  # axis (`_row_chunks`).
  xp = jnp.pad(xa, ((0, 0),) + pads + ((0, 0),))
  prods = [window for i in range(kh) for j in range(kw)
           for window in _channel_windows(_tap(xp, i, j, (ho, wo), strides, dilation), mix)]
  chunks = _row_chunks(b * ho, len(prods))
  prods = tuple((p * ga).reshape(chunks, -1, wo * cout) for p in prods)
  zero = jnp.zeros((), ga.dtype)
  rows = jax.lax.reduce(prods, (zero,) * len(prods),
                        lambda u, v: tuple(p + q for p, q in zip(u, v)), (1,))
  dk = jnp.stack([r.reshape(chunks * wo, cout).sum(0) for r in rows]).reshape(kernel.shape)
  return _unfused(dx.astype(x.dtype), mix), dk.astype(kernel.dtype)


_shifted_conv.defvjp(_shifted_conv_fwd, _shifted_conv_bwd)


class Conv2d(nnx.Module):
  """NHWC 2-D convolution, [..., H, W, in_features] -> [..., H', W', out_features].

  Args:
    in_features, out_features: channels.
    kernel_size: int or (kh, kw).
    stride, dilation: int or pair.
    padding: explicit torch-style padding (module docstring); default 0 as torch.
    groups: feature groups; groups == in_features == out_features is depthwise.
    use_bias: add a bias.
    kernel_axes: logical names of the HWIO kernel axes; the bias takes the last. Default:
      replicated.
    kernel_init, bias_init: None is torch's default (U(+-1/sqrt(fan_in)) on both, fan_in =
      in_features / groups * kh * kw); or any `init(key, shape, dtype)`.
    impl: 'auto' (depthwise by shifted sums, the rest by conv_general_dilated), 'xla' (all by
      conv_general_dilated) or 'shifted' (all by shifted sums: depthwise, or groups == 1 with
      few channels; module docstring).
    dtype: compute dtype (None: promoted from inputs and params); param_dtype: param dtype.
    rngs: anything with `.params()` (an `nnx.Rngs` or a `common.layers.keys.KeyStream`).
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: int | Sequence[int], *,
               stride: int | Sequence[int] = 1, padding: Padding = 0,
               dilation: int | Sequence[int] = 1, groups: int = 1, use_bias: bool = True,
               kernel_axes: Sequence[str | None] = (None, None, None, None),
               kernel_init: Initializer | None = None, bias_init: Initializer | None = None,
               impl: str = "auto", dtype: Any = None, param_dtype: Any = jnp.float32,
               rngs: Any):
    validation.check_positive("in_features", in_features)
    validation.check_positive("out_features", out_features)
    validation.check_positive("groups", groups)
    validation.check_choice("impl", impl, IMPLS)
    if in_features % groups or out_features % groups:
      raise ValueError(f"Conv2d groups={groups} must divide in_features={in_features} and "
                       f"out_features={out_features}.")
    if impl == "shifted" and groups != 1 and not groups == in_features == out_features:
      raise ValueError(f"Conv2d impl='shifted' takes groups=1 or depthwise (groups = "
                       f"in_features = out_features); got groups={groups}, in_features="
                       f"{in_features}, out_features={out_features}. Use impl='auto'.")
    if len(kernel_axes) != 4:
      raise ValueError(f"kernel_axes={tuple(kernel_axes)} must name 4 axes (HWIO).")
    kh, kw = _pair("kernel_size", kernel_size)
    self.strides = _pair("stride", stride)
    self.dilation = _pair("dilation", dilation)
    self.padding = normalize_padding(padding)
    self.groups = groups
    self.impl = impl
    self.dtype = dtype
    self.depthwise = groups == in_features == out_features
    default = torch_uniform((in_features // groups) * kh * kw)
    self.kernel = param(kernel_init or default, kernel_axes, rngs,
                        (kh, kw, in_features // groups, out_features), param_dtype)
    self.bias = (param(bias_init or default, tuple(kernel_axes)[-1:], rngs, (out_features,),
                       param_dtype) if use_bias else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    bias = self.bias[...] if self.bias is not None else None
    x, kernel, bias = nnx_dtypes.promote_dtype((x, self.kernel[...], bias), dtype=self.dtype)
    lead = x.shape[:-3]
    x = x.reshape((-1,) + x.shape[-3:])  # any leading batch axes -> one
    if self.impl == "shifted" or (self.depthwise and self.impl == "auto"):
      shifted = depthwise_conv2d if self.depthwise else narrow_conv2d
      y = shifted(x, kernel, strides=self.strides, padding=self.padding, dilation=self.dilation)
    else:
      y = jax.lax.conv_general_dilated(
          x, kernel, window_strides=self.strides, padding=self.padding,
          rhs_dilation=self.dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"),
          feature_group_count=self.groups)
    if bias is not None:
      y += bias
    return y.reshape(lead + y.shape[1:])


class ConvBN(nnx.Module):
  """Conv2d -> [activation] -> BatchNorm: the conv + BN unit of CNN stems and downsampling.

  SViT's stem (3x3 convs, exact GELU before the norm, as its official order) and patch merging,
  and BiFormer's downsampling layers and STL stem (no activation). Variables: `conv` (Conv2d)
  and `norm` (common.layers.norms.BatchNorm, torch numerics; `train=True` uses and updates
  batch statistics). `activation` is a name of common.layers.activations, or None.
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: int | Sequence[int], *,
               stride: int | Sequence[int] = 1, padding: Padding = 0,
               activation: str | None = None,
               kernel_axes: Sequence[str | None] = (None, None, None, "embed"),
               dtype: Any = None, param_dtype: Any = jnp.float32, rngs: Any):
    if activation is not None:
      activations.get_activation(activation, "activation")
    self.activation = activation
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.conv = Conv2d(in_features, out_features, kernel_size, stride=stride, padding=padding,
                       kernel_axes=kernel_axes, **kw)
    self.norm = BatchNorm(out_features, **kw)

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    x = self.conv(x)
    if self.activation is not None:
      x = activations.get_activation(self.activation)(x)
    return self.norm(x, train=train)
