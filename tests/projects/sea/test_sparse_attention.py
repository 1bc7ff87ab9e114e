"""Sparse attention: dense reference vs. row-sparse gather vs. the shared kernel, values and
gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.kernels import row_sparse_attention as kernels_row_sparse
from projects.sea import sparse_attention


def _case(seed=0, b=1, h=2, t=24, d=8, kk=6):
  rng = np.random.default_rng(seed)
  q, k, v = rng.standard_normal((3, b, h, t, d)).astype(np.float32)
  # Row-sparse lists with padding, and a row (query 3, head 1) that keeps nothing.
  idx = np.zeros((b, h, t, kk), np.int32)
  valid = np.zeros((b, h, t, kk), bool)
  for i in range(t):
    picks = rng.choice(i + 1, size=min(i + 1, kk - 1), replace=False)
    idx[..., i, : picks.size] = np.sort(picks)
    valid[..., i, : picks.size] = True
  valid[:, 1, 3] = False
  keep = np.zeros((b, h, t, t + 1), bool)
  np.put_along_axis(keep, np.where(valid, idx, t), True, axis=-1)
  return q, k, v, idx, valid, keep[..., :t]


def test_gather_equals_dense_including_empty_rows():
  q, k, v, idx, valid, keep = _case()
  dense_out, dense_p = sparse_attention.dense_masked_attention(q, k, v, keep)
  out, p = sparse_attention.gather_row_sparse_attention(q, k, v, idx, valid)
  np.testing.assert_allclose(out, dense_out, atol=1e-6)
  dense_at_keys = np.take_along_axis(np.asarray(dense_p), idx, -1)
  np.testing.assert_allclose(np.where(valid, dense_at_keys, 0), p, atol=1e-6)
  assert np.all(np.asarray(out)[:, 1, 3] == 0)


def test_gradients_are_finite_and_agree():
  q, k, v, idx, valid, keep = _case(1)
  # Make a dropped key score far above the kept ones: exp overflow must not leak into grads.
  k = k.copy()
  k[:, :, 0] = 1e3 * q[:, :, 5]

  def loss_dense(q, k, v):
    return jnp.sum(sparse_attention.dense_masked_attention(q, k, v, keep)[0] ** 2)

  def loss_gather(q, k, v):
    return jnp.sum(sparse_attention.gather_row_sparse_attention(q, k, v, idx, valid)[0] ** 2)

  grads = jax.jit(jax.grad(loss_gather, argnums=(0, 1, 2)))(q, k, v)
  ref = jax.jit(jax.grad(loss_dense, argnums=(0, 1, 2)))(q, k, v)
  for g, r in zip(grads, ref):
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, r, atol=1e-4, rtol=1e-4)


def _kernel(q, k, v, idx, valid, impl="auto"):
  return kernels_row_sparse.row_sparse_attention(q, k, v, idx, key_valid=valid, scale=1.0,
                                                 impl=impl)


def test_unknown_impl_is_refused():
  """SEA hands attention_impl to the kernel unchanged; the kernel refuses SEA's old names."""
  q, k, v, idx, valid, _ = _case()
  with pytest.raises(ValueError, match="impl='dense' is not supported"):
    _kernel(q, k, v, idx, valid, impl="dense")


def test_shared_kernel_equals_gather_values_and_gradients():
  """attention_impl='auto' (common.kernels.row_sparse_attention, SEA's default) is the same op."""
  q, k, v, idx, valid, _ = _case(2)

  def gather(q, k, v):
    return sparse_attention.gather_row_sparse_attention(q, k, v, idx, valid)[0]

  def kernel(q, k, v):
    return _kernel(q, k, v, idx, valid)

  def loss(f):
    return lambda q, k, v: jnp.sum(f(q, k, v) ** 2)

  out = kernel(q, k, v)
  ref = gather(q, k, v)
  np.testing.assert_allclose(out, ref, atol=1e-5)
  assert np.all(np.asarray(out)[:, 1, 3] == 0)   # a query with no kept key: zero context
  grads = jax.jit(jax.grad(loss(kernel), argnums=(0, 1, 2)))(q, k, v)
  want = jax.jit(jax.grad(loss(gather), argnums=(0, 1, 2)))(q, k, v)
  for g, r in zip(grads, want):
    np.testing.assert_allclose(g, r, atol=1e-4, rtol=1e-4)


def _grouped(keep, width):
  """The (head, key) pairs of each query's kept keys in one list: [B, T, width] x 3."""
  b, h, t, _ = keep.shape
  head = np.zeros((b, t, width), np.int32)
  key = np.zeros((b, t, width), np.int32)
  valid = np.zeros((b, t, width), bool)
  for n in range(b):
    for i in range(t):
      hs, ks = np.nonzero(keep[n, :, i])
      head[n, i, :hs.size], key[n, i, :hs.size], valid[n, i, :hs.size] = hs, ks, True
  return head, key, valid


@pytest.mark.parametrize("chunk_bytes", [None, 1])  # 1: one query per chunk, with padding
def test_grouped_lists_equal_dense_values_and_gradients(chunk_bytes, monkeypatch):
  """The CPU path (lists shared by a query's heads, in groups of rows) is the same attention as
  the dense mask."""
  if chunk_bytes:
    monkeypatch.setattr(sparse_attention, "GROUPED_CHUNK_BYTES", chunk_bytes)
  q, k, v, idx, valid, keep = _case(3, b=2, h=3, t=13)
  k = k.copy()
  k[:, :, 0] = 1e3 * q[:, :, 5]  # a dropped key far above the kept ones: no overflow leaks
  head, key, slot_valid = _grouped(keep, width=3 * 6 + 2)
  groups = [(head[:, a:b], key[:, a:b], slot_valid[:, a:b]) for a, b in ((0, 4), (4, 5), (5, 13))]

  def loss(f):
    return lambda q, k, v: jnp.sum(f(q, k, v) ** 2)

  grouped = lambda q, k, v: sparse_attention.grouped_list_attention(q, k, v, groups)
  dense = lambda q, k, v: sparse_attention.dense_masked_attention(q, k, v, keep)[0]
  np.testing.assert_allclose(jax.jit(grouped)(q, k, v), dense(q, k, v), atol=1e-5)
  assert np.all(np.asarray(jax.jit(grouped)(q, k, v))[:, 1, 3] == 0)  # the row keeping nothing
  grads = jax.jit(jax.grad(loss(grouped), argnums=(0, 1, 2)))(q, k, v)
  for g, r in zip(grads, jax.grad(loss(dense), argnums=(0, 1, 2))(q, k, v)):
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, r, atol=1e-4, rtol=1e-4)
