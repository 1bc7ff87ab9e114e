"""cotangent_barrier: values and gradients unchanged (NaN included); on CPU the backward holds
the conditional that stops XLA from fusing across it, and the forward holds none."""
import jax
import jax.numpy as jnp
import numpy as np

from common.layers.grad_barrier import cotangent_barrier


def _f(x, barrier):
  h = jnp.tanh(x) * 2.0
  h = cotangent_barrier(h) if barrier else h
  return jnp.sum(jnp.sin(h) + h * h)


def test_values_and_gradients_unchanged_nan_included():
  x = jnp.asarray(np.random.RandomState(0).randn(3, 5), jnp.float32)
  np.testing.assert_array_equal(np.asarray(cotangent_barrier(x)), np.asarray(x))
  g, g_ref = jax.grad(_f)(x, True), jax.grad(_f)(x, False)
  np.testing.assert_array_equal(np.asarray(g), np.asarray(g_ref))
  # A NaN first element takes the other branch; the cotangent still passes through unchanged.
  nan_first = lambda h: jnp.sum(cotangent_barrier(h) * jnp.arange(15.0).reshape(3, 5))
  xn = x.at[0, 0].set(jnp.nan)
  np.testing.assert_array_equal(np.asarray(jax.grad(nan_first)(xn)),
                                np.arange(15.0, dtype=np.float32).reshape(3, 5))


def test_the_backward_on_cpu_has_the_conditional_and_the_forward_none():
  x = jnp.ones((4, 8), jnp.float32)
  backward = jax.jit(jax.grad(_f), static_argnums=1).lower(x, True).as_text()
  assert "stablehlo.case" in backward or "stablehlo.if" in backward
  forward = jax.jit(_f, static_argnums=1).lower(x, True).as_text()
  assert "stablehlo.case" not in forward and "stablehlo.if" not in forward
