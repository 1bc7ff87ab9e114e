"""Read-outs of a trained model for plots (colab.ipynb): routing windows and attention maps.

`layer_inputs` replays the eval forward up to a layer; `routing_windows` recomputes that layer's
cluster scores and balanced top-w windows exactly as `RoutingSelfAttention._routing` does;
`attention_maps` spells each head's attention out as a dense [n, n] matrix (the model itself never
builds one), in numpy, for one example: routing heads as TF combines them (softmax inside each
sorted window, summed over the windows that hold the query, / (count + 1e-2)), local heads with
their block + flange causal mask. Only for heads without relative positions or dropout (the
positions='sinusoidal' / pixel configs), which is what the notebook trains.
"""
from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from flax import nnx

from projects.routing_transformer import kmeans, routing_attention


def layer_inputs(model, tokens, layer: int):
  """The eval-mode input of `model.layers[layer]` for tokens [B, n]."""
  x = model.embed_inputs(tokens, jnp.arange(tokens.shape[1]))
  for block in model.layers[:layer]:
    x, _ = block(x, train=False, rngs=None)
  return x


def heads_of(attn, x) -> dict:
  """q (scaled), k, v [B, H, n, d] of a RoutingSelfAttention for its input x [B, n, hidden]
  and, with routing heads, their LN(q) 'x', cluster 'scores' [B, Hr, n, K] and balanced
  windows 'idx' [B, Hr, K, w] (as `_routing`)."""
  b, n, _ = x.shape
  h, d = attn.num_local_heads + attn.num_routing_heads, attn.head_dim
  split = lambda t: t.reshape(b, n, h, d).transpose(0, 2, 1, 3)
  out = dict(q=split(attn.wq(x)) * d ** -0.5, k=split(attn.wk(x)), v=split(attn.wv(x)))
  if attn.num_routing_heads:
    out["x"] = kmeans.layer_norm_no_params(out["q"][:, :attn.num_routing_heads])
    out["scores"], _ = kmeans.assign(out["x"], attn.means[...])
    out["idx"] = routing_attention.select_windows(out["scores"], attn.window)
  return out


@functools.partial(nnx.jit, static_argnums=2)
def head_inputs(model, tokens, layer: int) -> dict:
  """`heads_of` the layer's attention, on its eval-mode input for tokens [B, n]."""
  return heads_of(model.layers[layer].attention, layer_inputs(model, tokens, layer))


def shared_windows(idx, pairs) -> dict:
  """How often position pairs meet in a routing window, which they need to attend at all.

  Args:
    idx: [B, Hr, K, w] windows (any routing head may hold the pair).
    pairs: (batch row, query position, key position) triples.

  Returns:
    {'shared': share of pairs with both positions in one window of one head, 'query_in',
    'key_in': share whose query / key is in any window (balanced top-w leaves tokens out)}.
  """
  idx = np.asarray(idx)
  b, hr, k, _ = idx.shape
  n = max([int(idx.max())] + [max(q, s) for _, q, s in pairs]) + 1
  member = np.zeros((b, hr, k, n), bool)
  np.put_along_axis(member.reshape(b * hr * k, n), idx.reshape(b * hr * k, -1), True, axis=1)
  shared, q_in, k_in = [], [], []
  for row, q, s in pairs:
    shared.append((member[row, :, :, q] & member[row, :, :, s]).any())
    q_in.append(member[row, :, :, q].any())
    k_in.append(member[row, :, :, s].any())
  mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
  return dict(shared=mean(shared), query_in=mean(q_in), key_in=mean(k_in))


def routing_windows(model, tokens, layer: int):
  """(scores [B, Hr, n, K], window indices [B, Hr, K, w]) of the layer's routing heads."""
  if not model.layers[layer].attention.num_routing_heads:
    raise ValueError(f"layer {layer} has no routing heads (skip_first or a local-only config).")
  out = head_inputs(model, tokens, layer)
  return out["scores"], out["idx"]


def _softmax(logits):
  logits = logits - logits.max(-1, keepdims=True)
  p = np.exp(logits)
  return p / p.sum(-1, keepdims=True)


def attention_maps(model, tokens, layer: int, example: int = 0) -> np.ndarray:
  """Dense attention weights [H, n, n] (routing heads first) of one example at `layer`."""
  attn = model.layers[layer].attention
  if attn.local_rel_k is not None or attn.routing_rel_k is not None:
    raise ValueError("attention_maps covers heads without relative positions; train a "
                     "positions='sinusoidal' (or pixel) config.")
  inputs = {k: np.asarray(v[example], np.float32) for k, v in
            head_inputs(model, tokens, layer).items()}
  q, k = inputs["q"], inputs["k"]
  hr, n = attn.num_routing_heads, q.shape[1]
  maps = np.zeros((q.shape[0], n, n), np.float32)
  if hr:
    x, idx = inputs["x"], inputs["idx"].astype(np.int64)
    causal = routing_attention.window_causal_mask(attn.window, attn.routing_mask_self)
    scale = routing_attention.logit_scale(x.shape[-1], attn.routing_scale_logits)
    for h in range(hr):
      counts = np.zeros(n)
      for window in idx[h]:
        xw = x[h, window]
        p = _softmax(np.where(causal, scale * (xw @ xw.T), -1e9))
        maps[h][np.ix_(window, window)] += p
        counts[window] += 1
      maps[h] /= (counts + routing_attention.SCATTER_EPS)[:, None]
  i, j = np.arange(n)[:, None], np.arange(n)[None, :]
  block = attn.query_block
  local_mask = (j <= i) & (j >= (i // block) * block - attn.memory_flange)
  for h in range(hr, q.shape[0]):
    maps[h] = _softmax(np.where(local_mask, q[h] @ k[h].T, -1e9))
  return maps
