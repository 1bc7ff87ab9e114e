"""SEA's attention estimator: encoder MLP and the causal CNN decoder to T_M compressed bins.

Official modules (attention.py `PerlinAttention.__init__`, causal branch, and modules.py):
  attention_predictor_enc     Linear(3D -> 2D) -> LayerNorm(2D) -> GELU (exact erf)     = t
  attention_predictor_dec_row Linear(2D -> (T_M/4)*2) -> ChannelSplit(2)    [N,2H,T,T_M/4]
  attention_predictor_cnn     LayerNorm(T_M/4) -> KeepRes[
                                  CausalConv2d(2H,2H,3,dilation 2) -> ReLU -> same -> ReLU
                                  -> nearest x(1,4) -> CausalConv2d(2H,H,1,width padding 1)
                              ] -> 'area' resize (T, T_M+2) -> (T, T_M) -> LayerNorm(T_M) = S
  attention_predictor_dec_scaler Linear(2D -> 2): the two gate logits.

We run the CNN in NHWC with the image height = time and the width = compressed bins; the
linear tail (nearest x4, the 1x1 conv, the 'area' resize) runs folded into one channel mix and
one [T_M, T_M/4] width map (`upsample_pad_resize_matrix`).
CausalConv2d stores a (2k-1, k) kernel of which only the top k rows are live (weight_mask) and
pads the height by (k-1)*dilation on both sides; that equals a k x k conv padded only on top, so
here the kernel is k x k with padding ((k-1)*dilation, 0) and the dead rows never exist.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.nnx.nn import dtypes as nnx_dtypes

from common.layers import activations, conv
from common.layers.linear import Linear
from common.layers.norms import LayerNorm

# nn.LayerNorm default eps, used by every LayerNorm of the estimator.
LN_EPS = 1e-5
# attention.py causal branch: `attention_predictor_dec_row_down_scale = 4` and
# `inner_ch = PERLIN_HOTFIX_OPT_INNER_CH (default 2)`.
DOWN_SCALE = 4
INNER_CHANNELS = 2


def make_linear(in_features, out_features, *, dtype, param_dtype, rngs):
  """nn.Linear's (in, out) shapes, replicated, with Flax's lecun-normal init (a distillation
  run's fresh estimator starts from it)."""
  return Linear(in_features, out_features, kernel_init=nnx.initializers.lecun_normal(),
                bias_init=nnx.initializers.zeros, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


def _causal_conv(in_ch, out_ch, kernel, *, dilation, width_padding, dtype, param_dtype, rngs):
  # Causal over the height (time): padded only on top, as the live rows of CausalConv2d.
  # Few channels (2H = 8 at 4 heads) on CPU: shifted sums with a written-out backward, a quarter
  # of XLA:CPU's conv time forward + backward (common.layers.conv); the OPT presets' 2H >= 24
  # keep XLA's conv.
  return conv.Conv2d(in_ch, out_ch, kernel, dilation=dilation,
                     padding=(((kernel - 1) * dilation, 0), (width_padding, width_padding)),
                     kernel_init=nnx.initializers.lecun_normal(),
                     bias_init=nnx.initializers.zeros, impl=conv.few_channel_impl(in_ch, out_ch),
                     dtype=dtype, param_dtype=param_dtype, rngs=rngs)


def area_resize_taps(in_width: int, out_width: int) -> tuple[np.ndarray, np.ndarray]:
  """F.interpolate(mode='area') = adaptive_avg_pool as taps: (index, weight), each [S, out].

  Output c averages inputs floor(c*in/out) .. ceil((c+1)*in/out) - 1, at most S of them; tap s
  reads input index[s, c] with weight[s, c] (0 past the window). Shrinking T_M + 2 -> T_M
  needs S = 2, so the resize is two multiply-adds per output instead of a [in, out] matmul.
  """
  lo = (np.arange(out_width) * in_width) // out_width
  hi = -(-((np.arange(out_width) + 1) * in_width) // out_width)
  span = hi - lo
  taps = np.arange(span.max())[:, None]
  index = np.minimum(lo[None, :] + taps, in_width - 1).astype(np.int32)
  weight = np.where(taps < span[None, :], 1.0 / span[None, :], 0.0).astype(np.float32)
  return index, weight


def upsample_pad_resize_matrix(width: int, out_width: int) -> np.ndarray:
  """[out_width, width]: nearest x4 upsampling, one zero column on each side, then 'area' resize.

  The decoder's tail is linear along the width up to its last LayerNorm: nearest x(1, 4), the
  1x1 conv (a channel mix whose width padding of 1 adds two bias-only columns) and the resize of
  4 * width + 2 columns to out_width. Folding the three width maps into one [out, width] matrix
  lets the tail run as two small matmuls on the narrow [.., width] input, instead of
  materialising, mixing and resampling the 4x wider tensor.
  """
  wide = DOWN_SCALE * width + 2
  up = np.zeros((wide, width), np.float64)
  up[1 + np.arange(DOWN_SCALE * width), np.arange(DOWN_SCALE * width) // DOWN_SCALE] = 1.0
  index, weight = area_resize_taps(wide, out_width)
  resize = np.zeros((out_width, wide), np.float64)
  for i, w in zip(index, weight):
    np.add.at(resize, (np.arange(out_width), i), w)
  return (resize @ up).astype(np.float32)


class AttentionEncoder(nnx.Module):
  """[performer context | v] [N, H, T, 3D] -> t [N, H, T, 2D] (attention_predictor_enc)."""

  def __init__(self, head_dim: int, *, dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.linear = make_linear(3 * head_dim, 2 * head_dim, dtype=dtype, param_dtype=param_dtype,
                              rngs=rngs)
    self.norm = LayerNorm(2 * head_dim, epsilon=LN_EPS, param_axes=(None,), dtype=dtype,
                          param_dtype=param_dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    return activations.gelu(self.norm(self.linear(x)))  # nn.GELU(): erf form


class CompressedScoreDecoder(nnx.Module):
  """t [N, H, T, 2D] -> S [N, H, T, T_M]: the compressed attention logits.

  The heads are mixed only inside the CNN (its channels are head x split).
  """

  def __init__(self, num_heads: int, head_dim: int, predictor_length: int, *, dtype=None,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    if predictor_length % DOWN_SCALE:
      raise ValueError(f"predictor_length (T_M)={predictor_length} is not allowed: it must be "
                       f"divisible by {DOWN_SCALE} (the decoder upsamples T_M/4 bins x4).")
    self.num_heads = num_heads
    self.predictor_length = predictor_length
    width = predictor_length // DOWN_SCALE
    channels = INNER_CHANNELS * num_heads
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.dec_row = make_linear(2 * head_dim, width * INNER_CHANNELS, **kw)
    self.norm_in = LayerNorm(width, epsilon=LN_EPS, param_axes=(None,), **kw)
    self.conv1 = _causal_conv(channels, channels, 3, dilation=2, width_padding=2, **kw)
    self.conv2 = _causal_conv(channels, channels, 3, dilation=2, width_padding=2, **kw)
    # Holds the 1x1 conv's parameters (the official layout); __call__ applies it folded into the
    # width map of the tail, never as a convolution.
    self.conv_out = _causal_conv(channels, num_heads, 1, dilation=1, width_padding=1, **kw)
    self.norm_out = LayerNorm(predictor_length, epsilon=LN_EPS, param_axes=(None,), **kw)

  def __call__(self, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns (S [N, H, T, T_M], decoder rows [N, 2H, T, T_M/4] in the official layout)."""
    n, h, time, _ = t.shape
    width = self.predictor_length // DOWN_SCALE
    rows = self.dec_row(t).reshape(n, h, time, INNER_CHANNELS, width)
    # ChannelSplit(2): view(N,H,T,2,W).permute(0,1,3,2,4) -> channel = head * 2 + split.
    dec_rows = jnp.transpose(rows, (0, 1, 3, 2, 4)).reshape(n, h * INNER_CHANNELS, time, width)
    x = self.norm_in(rows)  # LayerNorm over the width only, so the layout does not matter
    x = jnp.transpose(x, (0, 2, 4, 1, 3)).reshape(n, time, width, h * INNER_CHANNELS)  # NHWC
    x = jax.nn.relu(self.conv1(x))
    x = jax.nn.relu(self.conv2(x))
    # UpsampleFP32((1, 4)) (nearest along the width), the 1x1 conv_out (its width padding of 1
    # gives T_M + 2 columns) and KeepRes's 'area' resize back to T_M, as one channel mix and one
    # width map (upsample_pad_resize_matrix; each resize row sums to 1, so the bias passes as is).
    kernel, bias = self.conv_out.kernel[...][0, 0], self.conv_out.bias[...]
    x, kernel, bias = nnx_dtypes.promote_dtype((x, kernel, bias), dtype=self.conv_out.dtype)
    mixed = jnp.einsum("ntwc,ch->nhtw", x, kernel)
    width_map = jnp.asarray(upsample_pad_resize_matrix(width, self.predictor_length), x.dtype)
    x = jnp.einsum("nhtw,mw->nhtm", mixed, width_map) + bias[None, :, None, None]
    return self.norm_out(x), dec_rows
