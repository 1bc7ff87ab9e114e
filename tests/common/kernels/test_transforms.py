"""The sparse-attention ops under vmap and inside a 2x2 ('data', 'model') shard_map, with gradients.

The mesh uses 4 of the 8 CPU devices forced by tests/conftest.py; q, k, v and
the index lists are sharded P('data', 'model', None, None) as the module
docstrings prescribe, and gradients are taken through the shard_map.
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


def _bsa(q, k, v, idx, impl, causal=True):
  return block_sparse_attention(q, k, v, idx, block_q=BQ, block_k=BK,
                                causal=causal, return_lse=True, impl=impl)


def _rsa(q, k, v, rows, impl):
  return row_sparse_attention(q, k, v, rows, return_lse=True, impl=impl)


def _loss_and_grads(attn, q, k, v, index, w_o, impl):
  def loss(q, k, v):
    o, lse = attn(q, k, v, index, impl)
    return kc.weighted_loss(o, lse, w_o, 1.0)

  return jax.value_and_grad(loss, argnums=(0, 1, 2))(q, k, v)


def _block_inputs(rng, b, h):
  q, k, v = kc.qkv(rng, b, h, 32, 32, 16, jnp.float32)
  idx = kc.index_lists(rng, (b, h, 4), 4, 2)
  w_o, _ = kc.cotangent_weights(rng, b, h, 32, 16)
  return q, k, v, idx, w_o


def _row_inputs(rng, b, h):
  q, k, v = kc.qkv(rng, b, h, 32, 24, 16, jnp.float32)
  rows = kc.index_lists(rng, (b, h, 32), 24, 4)
  w_o, _ = kc.cotangent_weights(rng, b, h, 32, 16)
  return q, k, v, rows, w_o


def _assert_grads_close(got, want):
  (val, grads), (val_ref, grads_ref) = got, want
  kc.assert_close(val, val_ref, rtol=1e-4, atol=1e-3, what="loss")
  for name, g, g_ref in zip(("dq", "dk", "dv"), grads, grads_ref):
    kc.assert_close(g, g_ref, rtol=1e-4, atol=1e-4, what=name)


@pytest.mark.parametrize("op,impl", [("block", "interpret"),
                                     ("block", "xla"),
                                     ("row", "interpret")])
def test_vmap_matches_reference(op, impl):
  """vmap over an extra leading axis (Pallas bodies fold it into B)."""
  attn, inputs = (_bsa, _block_inputs) if op == "block" else (_rsa,
                                                              _row_inputs)
  q, k, v, index, w_o = inputs(np.random.default_rng(0), 2, 2)
  split = lambda x: x.reshape((2, 1) + x.shape[1:])  # [2, B=1, ...]
  args = [split(x) for x in (q, k, v, index, w_o)]
  fn = functools.partial(_loss_and_grads, attn)
  got = jax.jit(jax.vmap(lambda *a: fn(*a, impl)))(*args)
  want = jax.jit(jax.vmap(lambda *a: fn(*a, "reference")))(*args)
  _assert_grads_close(got, want)


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
  attn, inputs = (_bsa, _block_inputs) if op == "block" else (_rsa,
                                                              _row_inputs)
  q, k, v, index, w_o = inputs(np.random.default_rng(1), 2, 2)
  mesh = _mesh()
  sharded = jax.shard_map(lambda q, k, v, i: attn(q, k, v, i, impl),
                          mesh=mesh, in_specs=(SPEC,) * 4,
                          out_specs=(SPEC, P("data", "model", None)),
                          check_vma=check_vma)

  def loss(q, k, v, index, w_o):
    o, lse = sharded(q, k, v, index)
    return kc.weighted_loss(o, lse, w_o, 1.0)

  put = lambda x: jax.device_put(x, NamedSharding(mesh, SPEC))
  got = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(
      *(put(x) for x in (q, k, v, index, w_o)))
  want = jax.jit(functools.partial(_loss_and_grads, attn, impl="reference"))(
      q, k, v, index, w_o)
  got = jax.tree.map(np.asarray, got)
  _assert_grads_close(got, want)
