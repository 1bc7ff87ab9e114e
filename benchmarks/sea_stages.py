"""Where one SEA layer's forward time goes: each stage jit-compiled and timed alone.

A script, never a test; prints one markdown table. Usage:

    python benchmarks/sea_stages.py                    # T = 1024, 4096 (~2 min on 2 vCPU)
    python benchmarks/sea_stages.py --lengths 4096 --repeats 5

Shapes: batch 1, H = 4 heads of D = 64, k = 64, T_M = 256, nbf = 8 (the long_context.py sea
row), float32, random q, k, v. Stages, in the layer's order (projects/sea/attention.py):

  performer   the causal Performer over [positional code | v]
  encoder     Linear -> LayerNorm -> GELU: t
  decoder     dec_row, the causal CNN, the 'area' resize, LayerNorm, softmax: P_hat
  decoder+bwd the decoder forward and backward (gradient of mean(P_hat^2) in its parameters and
              input): what distillation pays to train the estimator, which the layer rows of
              long_context.py never differentiate (the selection is under stop_gradient)
  top-k       masks.grouped_topk_keep: the budget's cells over all heads
  lists       the kept keys: masks.grouped_key_lists where attention_impl resolves to xla (CPU),
              else masks.row_sparse_key_indices
  attention   sparse_attention.grouped_list_attention (xla) or
              common.kernels.row_sparse_attention (the other impls)
  layer       the whole SEAAttention forward (about the sum of the above)
  dense       the house's causal dense attention on the same q, k, v, for scale
              (common.layers.attention.causal_attention: MultiHeadAttention's causal path,
              the dense row of long_context.py)

Time: median of --repeats runs after a warm-up, block_until_ready. Measure on an idle machine;
the 1-minute load average is printed with the table.
"""
from __future__ import annotations

import argparse
import os
import statistics

import jax
import jax.numpy as jnp
from flax import nnx

from benchmarks import harness
from common.kernels import dispatch
from common.kernels import row_sparse_attention as kernels_row_sparse
from common.layers import attention as attention_layers
from projects.sea import masks, sparse_attention
from projects.sea.attention import SEAAttention

HEADS, HEAD_DIM, K, T_M, NBF = 4, 64, 64, 256, 8


def stage_times(t: int, repeats: int, impl: str) -> dict[str, float]:
  """Median milliseconds of each stage at sequence length t."""
  layer = SEAAttention(HEADS, HEAD_DIM, k=K, predictor_length=T_M, performer_nb_factor=NBF,
                       max_position_embeddings=t, attention_impl=impl, rngs=nnx.Rngs(0))
  graph, state = nnx.split(layer)
  keys = jax.random.split(jax.random.key(0), 3)
  q, k, v = (jax.random.normal(key, (1, HEADS, t, HEAD_DIM)) for key in keys)
  q = q * HEAD_DIM ** -0.5
  tables = masks.selection_tables(t, T_M, HEADS, K)
  grouped = dispatch.resolve_impl(impl) == dispatch.XLA

  def performer(state, q, k, v):
    m = nnx.merge(graph, state)
    pos = jnp.broadcast_to(m.position_code[...][:t], v.shape)
    return m.performer(q, k, jnp.concatenate([pos, v], -1))

  def encoder(state, pc, v):
    return nnx.merge(graph, state).encoder(jnp.concatenate([pc, v], -1))

  def decoder(state, t_pred):
    return jax.nn.softmax(nnx.merge(graph, state).decoder(t_pred)[0], axis=-1)

  def decoder_grad(state, t_pred):
    loss = lambda s, x: jnp.mean(decoder(s, x) ** 2)
    return jax.grad(loss, argnums=(0, 1))(state, t_pred)

  def lists(keep):
    if grouped:
      return masks.grouped_key_lists(keep, tables)
    return masks.row_sparse_key_indices(keep, tables)

  def attention(q, k, v, lists):
    if grouped:
      return sparse_attention.grouped_list_attention(q, k, v, lists)
    return kernels_row_sparse.row_sparse_attention(q, k, v, lists[0], key_valid=lists[1],
                                                   scale=1.0, impl=impl)

  def dense(q, k, v):
    swap = lambda x: jnp.swapaxes(x, 1, 2)
    return swap(attention_layers.causal_attention(swap(q), swap(k), swap(v), scale=1.0))

  steps = [("performer", performer, lambda: (state, q, k, v)),
           ("encoder", encoder, lambda: (state, out["performer"], v)),
           ("decoder", decoder, lambda: (state, out["encoder"])),
           ("decoder+bwd", decoder_grad, lambda: (state, out["encoder"])),
           ("top-k", lambda p: masks.grouped_topk_keep(p, tables), lambda: (out["decoder"],)),
           ("lists", lists, lambda: (out["top-k"],)),
           ("attention", attention, lambda: (q, k, v, out["lists"])),
           ("layer", lambda s, q, k, v: nnx.merge(graph, s)(q, k, v).context,
            lambda: (state, q, k, v)),
           ("dense", dense, lambda: (q, k, v))]
  out, times = {}, {}
  for name, fn, args in steps:
    fn = jax.jit(fn)
    out[name] = fn(*args())
    _, runs = harness.timed_calls(fn, *args(), repeats=repeats)
    times[name] = statistics.median(runs) * 1e3
  return times


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--lengths", default="1024,4096")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--attention_impl", default="auto")
  args = p.parse_args(argv)
  lengths = [int(s) for s in args.lengths.split(",") if s]
  rows = {t: stage_times(t, args.repeats, args.attention_impl) for t in lengths}
  names = list(next(iter(rows.values())))
  print(f"SEA layer stages, forward (decoder+bwd: forward and backward), median ms of "
        f"{args.repeats} ({jax.default_backend()}, "
        f"attention_impl {args.attention_impl!r}, load {os.getloadavg()[0]:.2f})\n")
  print("| stage | " + " | ".join(f"T = {t}" for t in lengths) + " |")
  print("|---|" + "---:|" * len(lengths))
  for name in names:
    print(f"| {name} | " + " | ".join(f"{rows[t][name]:.1f}" for t in lengths) + " |")


if __name__ == "__main__":
  main()
