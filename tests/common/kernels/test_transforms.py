"""The sparse-attention ops under vmap and inside a 2x2 ('data', 'model') shard_map, with gradients.

Every case carries the ops' optional inputs as well: GQA (2 query heads per kv head), segment
ids and, for the block op, a per-head rel_keys and a shared rel_values. The mesh uses 4 of the 8
CPU devices forced by tests/conftest.py, with the specs the module docstrings prescribe:
P('data', 'model', None, None) for q, k, v and the index lists (4 query and 2 kv heads, so each
'model' shard holds whole groups), P('data', None) for segment ids, P('model', None, None) for
the per-head table and P() for the shared one, whose gradient shard_map sums over the shards.
Gradients (q, k, v and the tables) are taken through the shard_map.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from common.kernels.block_sparse_attention import block_sparse_attention
from common.kernels.row_sparse_attention import row_sparse_attention
from tests.common.kernels import kernel_checks as kc

BQ = BK = 8
SPEC = P("data", "model", None, None)
SEG_SPEC = P("data", None)


def _block_case(rng, b, h):
  """(attend, differentiable args, other args, their shard specs) of the block op; T = 16 (2
  blocks) keeps the TPU interpreter's grid small."""
  q, k, v = kc.qkv(rng, b, h, 16, 16, 16, jnp.float32, h_kv=h // 2)
  idx = kc.index_lists(rng, (b, h, 2), 2, 2)
  seg = kc.segment_ids(rng, b, 16, "packed")
  rel_k, rel_v = kc.rel_table(rng, (h, 7, 16)), kc.rel_table(rng, (7, 16))

  def attend(impl, q, k, v, rel_k, rel_v, idx, seg):
    return block_sparse_attention(
        q, k, v, idx, block_q=BQ, block_k=BK, causal=True, q_segment_ids=seg,
        kv_segment_ids=seg, rel_keys=rel_k, rel_values=rel_v, return_lse=True,
        impl=impl)

  return (attend, (q, k, v, rel_k, rel_v), (idx, seg),
          (SPEC, SPEC, SPEC, P("model", None, None), P()), (SPEC, SEG_SPEC))


def _row_case(rng, b, h):
  q, k, v = kc.qkv(rng, b, h, 32, 24, 16, jnp.float32, h_kv=h // 2)
  rows = kc.index_lists(rng, (b, h, 32), 24, 4)
  q_seg = kc.segment_ids(rng, b, 32, "packed")
  kv_seg = kc.segment_ids(rng, b, 24, "packed")

  def attend(impl, q, k, v, rows, q_seg, kv_seg):
    return row_sparse_attention(q, k, v, rows, q_segment_ids=q_seg,
                                kv_segment_ids=kv_seg, return_lse=True,
                                impl=impl)

  return (attend, (q, k, v), (rows, q_seg, kv_seg), (SPEC,) * 3,
          (SPEC, SEG_SPEC, SEG_SPEC))


CASES = {"block": _block_case, "row": _row_case}


def _weights(q):
  """Output weights of the test loss, shaped like q."""
  return kc.cotangent_weights(np.random.default_rng(7), *q.shape)[0]


def _value_and_grads(attend, diff, rest, w_o):
  def loss(*diff):
    o, lse = attend(*diff, *rest)
    return kc.weighted_loss(o, lse, w_o, 1.0)

  return jax.value_and_grad(loss, argnums=tuple(range(len(diff))))(*diff)


def _assert_grads_close(got, want):
  (val, grads), (val_ref, grads_ref) = got, want
  kc.assert_close(val, val_ref, rtol=1e-4, atol=1e-3, what="loss")
  assert len(grads) == len(grads_ref)
  for name, g, g_ref in zip(kc.GRAD_NAMES, grads, grads_ref):
    kc.assert_close(g, g_ref, rtol=1e-4, atol=1e-4, what=name)


@pytest.mark.parametrize("op,impl", [("block", "interpret"),
                                     ("block", "xla"),
                                     ("row", "interpret")])
def test_vmap_matches_reference(op, impl):
  """vmap over an extra leading axis (Pallas bodies fold it into B); tables are not mapped."""
  attend, diff, rest, _, _ = CASES[op](np.random.default_rng(0), 2, 4)
  w_o = _weights(diff[0])
  split = lambda x: x.reshape((2, 1) + x.shape[1:])  # [2, B=1, ...]
  mapped = [split(x) for x in diff[:3]] + list(diff[3:])
  in_axes = (0, 0, 0) + (None,) * (len(diff) - 3) + (0,) * (len(rest) + 1)

  def run(impl):
    fn = lambda *a: _value_and_grads(
        functools.partial(attend, impl), a[:len(diff)], a[len(diff):-1], a[-1])
    return jax.jit(jax.vmap(fn, in_axes=in_axes))(
        *mapped, *(split(x) for x in rest), split(w_o))

  _assert_grads_close(run(impl), run("reference"))


def _mesh():
  return jax.make_mesh((2, 2), ("data", "model"), devices=jax.devices()[:4])


# Pallas' HLO interpreter (impl="interpret") evaluates kernel bodies on values
# that carry shard_map's varying-axes types and fails JAX's check_vma there
# (a JAX interpreter limitation), so that case runs with check_vma=False; the
# TPU interpreter and the XLA paths run with the default check_vma=True.
@pytest.mark.parametrize("op,impl,check_vma", [("block", "interpret", False),
                                               ("block", "interpret_tpu", True),
                                               ("block", "xla", True),
                                               ("row", "interpret", False),
                                               ("row", "xla", True)])
def test_shard_map_over_batch_and_heads(op, impl, check_vma):
  attend, diff, rest, diff_specs, rest_specs = CASES[op](
      np.random.default_rng(1), 2, 4)
  w_o = _weights(diff[0])
  mesh = _mesh()
  sharded = jax.shard_map(functools.partial(attend, impl), mesh=mesh,
                          in_specs=diff_specs + rest_specs,
                          out_specs=(SPEC, P("data", "model", None)),
                          check_vma=check_vma)
  put = lambda xs, specs: [jax.device_put(x, NamedSharding(mesh, s))
                           for x, s in zip(xs, specs)]
  got = jax.jit(_value_and_grads, static_argnums=0)(
      sharded, put(diff, diff_specs), put(rest, rest_specs),
      put([w_o], [SPEC])[0])
  want = jax.jit(_value_and_grads, static_argnums=0)(
      functools.partial(attend, "reference"), diff, rest, w_o)
  _assert_grads_close(jax.tree.map(np.asarray, got), want)
