"""grouped_matmul: the windowed (CPU) path and jax.lax.ragged_dot against a per-group numpy
reference, values and gradients, with empty groups, groups longer than a tile and trailing rows of no group;
the default window choice."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.layers import grouped_matmul as gm


def test_windowed_and_ragged_dot_equal_a_per_group_reference():
  rng = np.random.RandomState(0)
  sizes = np.array([0, 13, 0, 3, 17], np.int32)   # empty groups; 13, 17 > tile 8; 7 rows left
  r, k, n = 40, 6, 5
  x, w, cot = rng.randn(r, k), rng.randn(len(sizes), k, n), rng.randn(r, n)
  want_y, want_dx, want_dw = np.zeros((r, n)), np.zeros((r, k)), np.zeros_like(w)
  for g, (lo, hi) in enumerate(zip(np.cumsum(sizes) - sizes, np.cumsum(sizes))):
    want_y[lo:hi] = x[lo:hi] @ w[g]
    want_dx[lo:hi] = cot[lo:hi] @ w[g].T
    want_dw[g] = x[lo:hi].T @ cot[lo:hi]
  x, w, cot = (jnp.asarray(a, jnp.float32) for a in (x, w, cot))
  for impl, tile in (("windowed", 8), ("windowed", 32), ("windowed", 64), ("ragged_dot", None)):
    f = jax.jit(lambda x, w: gm.grouped_matmul(x, w, jnp.asarray(sizes), impl=impl, tile=tile))
    y, vjp = jax.vjp(f, x, w)
    for got, want in zip((y, *vjp(cot)), (want_y, want_dx, want_dw)):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{impl} tile={tile}")
  with pytest.raises(ValueError, match="impl='xla'"):
    gm.grouped_matmul(x, w, jnp.asarray(sizes), impl="xla")


def test_default_tile_is_half_a_mean_group_within_bounds():
  assert gm.default_tile(4096, 8) == 256          # the MoE benchmark (benchmarks/experts.py)
  assert gm.default_tile(64, 4) == gm.MIN_TILE
  assert gm.default_tile(1 << 20, 2) == gm.MAX_TILE
  assert gm.num_windows(4096, 8, 256) == 24       # 16 full windows + one partial per group


def test_windowed_bfloat16_accumulates_weight_grads_in_float32():
  """Many windows of one group: dw summed in f32, then cast, stays close to the f32 result."""
  rng = np.random.RandomState(1)
  x, cot = rng.randn(256, 16), rng.randn(256, 8)
  w = rng.randn(2, 16, 8)
  sizes = jnp.asarray([200, 56], jnp.int32)
  grads = {}
  for dt in (jnp.float32, jnp.bfloat16):
    f = lambda x, w: gm.grouped_matmul(x, w, sizes, impl="windowed", tile=8)
    _, vjp = jax.vjp(f, jnp.asarray(x, dt), jnp.asarray(w, dt))
    grads[dt] = vjp(jnp.asarray(cot, dt))
    assert all(g.dtype == dt for g in grads[dt])
  scale = np.abs(np.asarray(grads[jnp.float32][1])).max()
  err = np.abs(np.asarray(grads[jnp.bfloat16][1], np.float32) - grads[jnp.float32][1]).max()
  assert err < 0.02 * scale, err
