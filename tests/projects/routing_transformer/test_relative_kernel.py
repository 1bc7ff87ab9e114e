"""The official text setting (Shaw relative positions) through common.kernels equals the official
windowed jnp path, in values and in gradients (inputs and both relative tables), for the routing
heads (distance = rank inside the sorted window) and the local heads (distance = token distance,
clipped). The kernel's impls are compared with each other in tests/common/kernels; the XLA
path stands for them here."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from projects.routing_transformer import kmeans, local_attention, routing_attention

B, H, N, D = 1, 2, 32, 8
MAX_REL = 5  # < window and < block + flange: clipping is exercised on both head types


def _normal(seed, shape):
  return jnp.asarray(np.random.RandomState(seed).randn(*shape), jnp.float32)


def _tables(seed):
  return _normal(seed, (2 * MAX_REL + 1, D)), _normal(seed + 1, (2 * MAX_REL + 1, D))


def _value_and_grads(fn, args, w):
  loss = lambda *a: jnp.sum(fn(*a).astype(jnp.float32) * w)
  return jax.value_and_grad(loss, argnums=tuple(range(len(args))))(*args)


def _assert_same(got, want):
  (val, grads), (val_ref, grads_ref) = got, want
  np.testing.assert_allclose(val, val_ref, rtol=1e-5, atol=1e-4)
  for g, g_ref in zip(grads, grads_ref):
    np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-4)


@functools.partial(jax.jit, static_argnames=("impl",))
def _routing(x, v, rel_k, rel_v, means, w, *, impl):
  def fn(x, v, rel_k, rel_v):
    idx = routing_attention.select_windows(kmeans.assign(x, means)[0], 12)  # 4 * 12 > N
    return routing_attention.routed_attention(
        x, v, idx, causal=True, impl=impl, rel_keys=rel_k, rel_values=rel_v,
        max_relative_position=MAX_REL)
  return _value_and_grads(fn, (x, v, rel_k, rel_v), w)


@functools.partial(jax.jit, static_argnames=("impl",))
def _local(q, k, v, rel_k, rel_v, w, *, impl):
  def fn(q, k, v, rel_k, rel_v):
    return local_attention.local_attention(
        q, k, v, block=8, flange=16, impl=impl, rel_keys=rel_k, rel_values=rel_v,
        max_relative_position=MAX_REL)
  return _value_and_grads(fn, (q, k, v, rel_k, rel_v), w)


def test_routing_heads_kernel_equals_official():
  x = kmeans.layer_norm_no_params(_normal(0, (B, H, N, D)))
  means = kmeans.init_means(jax.random.key(2), H, 4, D)
  args = (x, _normal(1, (B, H, N, D)), *_tables(3), means, _normal(5, (B, H, N, D)))
  _assert_same(_routing(*args, impl="xla"), _routing(*args, impl="official"))


@functools.partial(jax.jit, static_argnames=("impl",))
def _routing_lucidrains(x, v, means, w, *, impl):
  def fn(x, v):
    idx = routing_attention.select_windows(kmeans.assign(x, means)[0], 12)
    return routing_attention.routed_attention(x, v, idx, causal=True, impl=impl, mask_self=True,
                                              scale_logits=True)
  return _value_and_grads(fn, (x, v), w)


def test_routing_heads_self_mask_and_scale_kernel_equals_official():
  """Gradients too, for the self mask (shifted query positions in the kernel) and the scale."""
  x = kmeans.layer_norm_no_params(_normal(0, (B, H, N, D)))
  means = kmeans.init_means(jax.random.key(2), H, 4, D)
  args = (x, _normal(1, (B, H, N, D)), means, _normal(5, (B, H, N, D)))
  _assert_same(_routing_lucidrains(*args, impl="xla"),
               _routing_lucidrains(*args, impl="official"))


def test_local_heads_kernel_equals_official():
  args = (*(_normal(s, (B, H, N, D)) for s in (6, 7, 8)), *_tables(9),
          _normal(11, (B, H, N, D)))
  _assert_same(_local(*args, impl="xla"), _local(*args, impl="official"))
