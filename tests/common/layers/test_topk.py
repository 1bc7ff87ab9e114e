"""Top-k thresholding: the kept set, tie handling, and gradients only through kept entries."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.layers import topk


def _numpy_topk(x, k):
  out = np.zeros_like(x)
  idx = np.argsort(-x, axis=-1, kind="stable")[..., :k]
  np.put_along_axis(out, idx, np.take_along_axis(x, idx, axis=-1), axis=-1)
  return out


@pytest.mark.parametrize("mode", topk.TOPK_MODES)
def test_keeps_the_k_largest_per_token(mode):
  x = np.random.RandomState(0).randn(2, 3, 16).astype(np.float32)
  got = topk.topk_threshold(jnp.asarray(x), 5, mode=mode)
  np.testing.assert_array_equal(np.asarray(got), _numpy_topk(x, 5))
  assert np.all((np.asarray(got) != 0).sum(-1) == 5)


def test_gradient_flows_only_through_kept_entries():
  x = np.random.RandomState(1).randn(4, 10).astype(np.float32)
  w = np.random.RandomState(2).randn(4, 10).astype(np.float32)
  grad = jax.grad(lambda a: jnp.sum(topk.topk_threshold(a, 3) * w))(jnp.asarray(x))
  kept = _numpy_topk(x, 3) != 0
  np.testing.assert_allclose(np.asarray(grad), np.where(kept, w, 0.0))


def test_tie_handling_exact_keeps_k_threshold_keeps_ties():
  x = jnp.asarray([[1.0, 3.0, 2.0, 3.0, 3.0, 0.0]])
  exact = np.asarray(topk.topk_mask(x, 2, mode="exact"))
  np.testing.assert_array_equal(exact, [[0, 1, 0, 1, 0, 0]])  # lower indices win ties
  threshold = np.asarray(topk.topk_mask(x, 2, mode="threshold"))
  np.testing.assert_array_equal(threshold, [[0, 1, 0, 1, 1, 0]])


def test_k_equal_to_size_is_identity_and_bad_k_is_an_error():
  x = jnp.arange(6.0).reshape(1, 6)
  np.testing.assert_array_equal(topk.topk_threshold(x, 6), x)
  for k in (0, 7, 2.5):
    with pytest.raises(ValueError, match="top_k"):
      topk.topk_threshold(x, k)
  with pytest.raises(ValueError, match="allowed"):
    topk.topk_threshold(x, 2, mode="fuzzy")


# block_bytes 640: 4 rows of 40 keys a block on CPU, which does not divide the 6 rows.
@pytest.mark.parametrize("dtype,block_bytes", [(jnp.float32, None), (jnp.bfloat16, None),
                                               (jnp.float16, None), (jnp.float32, 640)])
def test_kth_largest_radix_select_is_exact(dtype, block_bytes, monkeypatch):
  if block_bytes:
    monkeypatch.setattr(topk, "SEARCH_BLOCK_BYTES", block_bytes)
  # Signs, ties, zeros of both signs and infinities: the radix key must order them as floats do.
  rng = np.random.RandomState(3)
  x = rng.randn(6, 40).astype(np.float32)
  x[0, :10] = 0.0
  x[1, :20] = -0.0
  x[2, :30] = 1.5
  x[3, :5] = np.inf
  x[4, :5] = -np.inf
  x = jnp.asarray(x, dtype)
  for k in (1, 7, 20, 39, 40):
    want = jnp.sort(x, axis=-1)[..., -k:][..., :1]
    got = topk._radix_select(x, k)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))
  # A k per row, and leading axes that kth_largest_key flattens into rows for its blocks.
  ks = np.array([1, 7, 20, 39, 40, 3])
  want = np.take_along_axis(np.sort(np.asarray(x, np.float32), -1), 40 - ks[:, None], -1)
  got = topk.kth_largest_key(topk.order_preserving_bits(x).reshape(2, 3, 40), ks.reshape(2, 3))
  np.testing.assert_array_equal(got.reshape(6, 1), topk.order_preserving_bits(want))
  # On CPU the threshold mode takes the radix path: no top_k (a sort on XLA:CPU) in its program.
  assert "top_k" not in str(jax.jit(lambda a: topk.topk_mask(a, 7)).lower(x).as_text())
