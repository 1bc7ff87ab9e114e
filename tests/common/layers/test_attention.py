"""Multi-head attention against a numpy softmax, masks, causality and bias."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.layers import attention
from common.layers.dropout import Dropout


def _numpy_mha(att, xq, xkv, bias=None, mask=None):
  p = {n: np.asarray(getattr(att, n)[...]) for n in ("query", "key", "value", "out")}
  b = {n: np.asarray(getattr(att, n + "_bias")[...]) for n in ("query", "key", "value", "out")}
  q = np.einsum("btd,dhk->bthk", xq, p["query"]) + b["query"]
  k = np.einsum("btd,dhk->bthk", xkv, p["key"]) + b["key"]
  v = np.einsum("btd,dhk->bthk", xkv, p["value"]) + b["value"]
  logits = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
  if bias is not None:
    logits = logits + bias
  if mask is not None:
    logits = np.where(mask, logits, -1e10)
  w = np.exp(logits - logits.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  y = np.einsum("bhqk,bkhd->bqhd", w, v)
  return np.einsum("bthk,hkd->btd", y, p["out"]) + b["out"]


@pytest.fixture(scope="module")
def att():
  return attention.MultiHeadAttention(2, 8, bias_init=nnx.initializers.normal(0.1),
                                      rngs=nnx.Rngs(0))


def test_self_and_cross_attention_match_numpy(att):
  rs = np.random.RandomState(0)
  xq, xkv = rs.randn(2, 4, 8).astype(np.float32), rs.randn(2, 6, 8).astype(np.float32)
  bias = rs.randn(1, 2, 4, 6).astype(np.float32)
  mask = rs.rand(2, 1, 4, 6) > 0.3
  got = att(jnp.asarray(xq), jnp.asarray(xkv), bias=jnp.asarray(bias), mask=jnp.asarray(mask))
  np.testing.assert_allclose(np.asarray(got), _numpy_mha(att, xq, xkv, bias, mask),
                             rtol=1e-4, atol=1e-5)
  got = att(jnp.asarray(xq))
  np.testing.assert_allclose(np.asarray(got), _numpy_mha(att, xq, xq), rtol=1e-4, atol=1e-5)


def test_causal_outputs_ignore_future_tokens(att):
  x = np.random.RandomState(1).randn(1, 5, 8).astype(np.float32)
  y = np.asarray(att(jnp.asarray(x), causal=True))
  x2 = x.copy()
  x2[:, 3:] += 10.0
  y2 = np.asarray(att(jnp.asarray(x2), causal=True))
  np.testing.assert_allclose(y[:, :3], y2[:, :3], rtol=1e-5, atol=1e-6)
  assert not np.allclose(y[:, 3:], y2[:, 3:])
  causal = np.tril(np.ones((5, 5), bool))[None, None]
  np.testing.assert_allclose(y, _numpy_mha(att, x, x, mask=causal), rtol=1e-4, atol=1e-5)


def test_masks_and_fully_masked_rows():
  np.testing.assert_array_equal(attention.make_causal_mask(3)[0, 0],
                                [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
  m = attention.make_attention_mask(jnp.array([[1, 0]]), jnp.array([[1, 1, 0]]))
  assert m.shape == (1, 1, 2, 3)
  np.testing.assert_array_equal(m[0, 0], [[1, 1, 0], [0, 0, 0]])
  q = jnp.ones((1, 2, 1, 4))
  out = attention.dot_product_attention(q, q, q, scale=1.0, mask=jnp.zeros((1, 1, 2, 2), bool))
  assert np.all(np.isfinite(np.asarray(out)))


def test_axes_and_errors():
  att = attention.MultiHeadAttention(2, 8, use_bias=False, rngs=nnx.Rngs(0))
  assert att.query.get_metadata()["out_sharding"] == ("embed", "heads", "kv")
  assert att.out.get_metadata()["out_sharding"] == ("heads", "kv", "embed")
  assert att.query_bias is None
  with pytest.raises(ValueError, match="num_heads=3 must divide in_features=8"):
    attention.MultiHeadAttention(3, 8, rngs=nnx.Rngs(0))


def test_causal_attention_by_chunks_equals_one_masked_pass():
  # T = 10 over chunks of 4: a partial last chunk; values and gradients of all three inputs.
  q, k, v = (jax.random.normal(jax.random.key(i), (2, 10, 3, 4)) for i in range(3))
  mask = np.tril(np.ones((10, 10), bool))
  full = lambda q, k, v: attention.dot_product_attention(q, k, v, scale=0.5, mask=mask)
  chunked = lambda q, k, v: attention.causal_attention(q, k, v, scale=0.5, chunk=4)
  np.testing.assert_allclose(chunked(q, k, v), full(q, k, v), rtol=1e-6, atol=1e-6)
  loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a)))
  for g_c, g_f in zip(jax.grad(loss(chunked), argnums=(0, 1, 2))(q, k, v),
                      jax.grad(loss(full), argnums=(0, 1, 2))(q, k, v)):
    np.testing.assert_allclose(g_c, g_f, rtol=1e-5, atol=1e-6)


def test_full_attention_by_query_chunks_equals_one_pass():
  # Tq = 10 over chunks of 4 (a partial last chunk), Tk = 7; values and gradients.
  q = jax.random.normal(jax.random.key(0), (2, 10, 3, 4))
  k, v = (jax.random.normal(jax.random.key(i), (2, 7, 3, 4)) for i in (1, 2))
  full = lambda q, k, v: attention.dot_product_attention(q, k, v, scale=0.5)
  chunked = lambda q, k, v: attention.chunked_attention(q, k, v, scale=0.5, chunk=4)
  np.testing.assert_allclose(chunked(q, k, v), full(q, k, v), rtol=1e-6, atol=1e-6)
  loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a)))
  for g_c, g_f in zip(jax.grad(loss(chunked), argnums=(0, 1, 2))(q, k, v),
                      jax.grad(loss(full), argnums=(0, 1, 2))(q, k, v)):
    np.testing.assert_allclose(g_c, g_f, rtol=1e-5, atol=1e-6)


def test_long_causal_self_attention_takes_the_chunked_path_with_the_same_values(att):
  # T > CAUSAL_CHUNK: MultiHeadAttention(causal=True) runs causal_attention; compare with an
  # explicit causal mask (which keeps the one-pass path).
  t = attention.CAUSAL_CHUNK + 44
  x = np.random.default_rng(3).standard_normal((1, t, 8)).astype(np.float32)
  chunked = att(jnp.asarray(x), causal=True)
  one_pass = att(jnp.asarray(x), mask=attention.make_causal_mask(t))
  np.testing.assert_allclose(chunked, one_pass, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(chunked, _numpy_mha(att, x, x, mask=np.tril(np.ones((t, t), bool))),
                             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bias_shape, mask_shape", [((1, 3, 5, 6), (5, 6)),
                                                    ((3, 5, 6), (1, 1, 5, 6)),
                                                    (None, (1, 3, 5, 6))])
def test_a_batch_of_one_equals_its_row_of_a_larger_batch(bias_shape, mask_shape):
  # B = 1 drops the batch axis inside (XLA:CPU's slow size-1 reductions): values and gradients
  # are those of the same example in a batch of two, dropout draws those of the 4-D weights.
  rs = np.random.default_rng(4)
  q, k, v = (jnp.asarray(rs.standard_normal((2, t, 3, 4)), jnp.float32) for t in (5, 6, 6))
  bias = None if bias_shape is None else jnp.asarray(rs.standard_normal(bias_shape), jnp.float32)
  mask = jnp.asarray(rs.random(mask_shape) > 0.3)

  def attend(q, k, v):
    return attention.dot_product_attention(q, k, v, scale=0.5, bias=bias, mask=mask)

  np.testing.assert_allclose(attend(q[:1], k[:1], v[:1]), attend(q, k, v)[:1], rtol=1e-6,
                             atol=1e-6)
  loss = lambda *a: jnp.sum(jnp.sin(attend(*a)))
  one = jax.grad(loss, argnums=(0, 1, 2))(q[:1], k[:1], v[:1])
  two = jax.grad(loss, argnums=(0, 1, 2))(q[:1].repeat(2, 0), k[:1].repeat(2, 0),
                                          v[:1].repeat(2, 0))
  for g1, g2 in zip(one, two):
    np.testing.assert_allclose(g1, g2[:1], rtol=1e-5, atol=1e-6)
  # Dropout draws over the [B, H, Tq, Tk] weights, as for any batch.
  dropout = Dropout(0.5)
  dropped = attention.dot_product_attention(q[:1], k[:1], v[:1], scale=0.5, dropout=dropout,
                                            train=True, rngs=nnx.Rngs(dropout=7))
  qh, kh, vh = (jnp.swapaxes(a[:1], 1, 2) for a in (q, k, v))
  weights = jax.nn.softmax(0.5 * jnp.einsum("bhqd,bhkd->bhqk", qh, kh), axis=-1)
  weights = dropout(weights, train=True, rngs=nnx.Rngs(dropout=7))
  expected = jnp.swapaxes(jnp.einsum("bhqk,bhkd->bhqd", weights, vh), 1, 2)
  np.testing.assert_allclose(dropped, expected, rtol=1e-5, atol=1e-6)
