"""Monet expert layers: horizontal (MoHDE) and vertical (MoVDE) decompositions.

Official: dmis-lab/Monet@b5cb786 modeling_monet.py `MonetMoVDE` [M:L144-177] and `MonetMoHDE`
[M:L180-197]; spec shared/specs/experts.md §1.5-1.6; paper App. A.3 Alg. 1/2. All E*m hidden
units are computed densely; sparsity enters only through the routing weights g1, g2, and the
outputs of the routing heads are SUMMED (no 1/H).

The three-operand einsums of the official code are contracted in two steps through a (B, T, H, m)
intermediate, as the paper's Flax code does: equal up to float reassociation (~1e-7).

Layouts (torch Linear weight is (out, in)): `u` kernel (d, E, m), bias (E, m); `v` kernel
(E, m, d); expert output biases `b` (E, d). VD halves m and d per block.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from common.layers.activations import get_activation
from common.layers.keys import KeyStream, param
from common.layers.mlp import Mlp
from projects.monet.attention import DEFAULT_INIT
from projects.monet.config import MonetConfig

_ZEROS = nnx.initializers.zeros


def _up(x, kernel, bias, act, dt):
  """act(U_i x + b_i) for every expert i: (B, T, E, m)."""
  h = jnp.einsum("btd,dem->btem", x, kernel[...].astype(dt)) + bias[...].astype(dt)
  return act(h)


def _down(h, kernel, dt):
  """V applied to the flattened (expert, m) axis: (B, T, E, m) -> (B, T, d_out)."""
  return jnp.einsum("btem,emd->btd", h, kernel[...].astype(dt))


def _up_weights(keys, d, e, m, pd):
  """The up projections U (d, E, m) and their biases (E, m), zero-initialised."""
  return (param(DEFAULT_INIT, ("embed", "expert", "mlp"), keys, (d, e, m), pd),
          param(_ZEROS, ("expert", "mlp"), None, (e, m), pd))


def _down_kernel(keys, e, m, d_out, pd):
  """A down projection V (E, m, d_out)."""
  return param(DEFAULT_INIT, ("expert", "mlp", "embed"), keys, (e, m, d_out), pd)


def _output_bias(e, d_out, pd):
  """Per-expert output biases (E, d_out), zero-initialised."""
  return param(_ZEROS, ("expert", "embed"), None, (e, d_out), pd)


def _cross(h, g_in, g_out):
  """sum_h g_out[h, j] * sum_i g_in[h, i] * h[i]  -> (B, T, E, m), indexed by j."""
  mixed = jnp.einsum("btim,bthi->bthm", h, g_in)
  return jnp.einsum("bthm,bthj->btjm", mixed, g_out)


class MonetMoHDE(nnx.Module):
  """Horizontal decomposition: expert (i, j) = V_j relu2(U_i x + b1_i) + b2_j."""

  def __init__(self, cfg: MonetConfig, *, rngs: nnx.Rngs):
    d, e, m, pd = cfg.hidden_size, cfg.moe_experts, cfg.moe_dim, cfg.param_dtype
    self.dtype = cfg.dtype
    self.act = get_activation(cfg.hidden_act, "hidden_act")
    keys = KeyStream.of(rngs)
    self.u, self.u_bias = _up_weights(keys, d, e, m, pd)
    self.v = _down_kernel(keys, e, m, d, pd)
    self.b = _output_bias(e, d, pd)

  def __call__(self, x: jax.Array, g1: jax.Array, g2: jax.Array) -> jax.Array:
    dt = self.dtype
    x, g1, g2 = x.astype(dt), g1.astype(dt), g2.astype(dt)  # [M:L194]: g cast to the activations
    h = _up(x, self.u, self.u_bias, self.act, dt)
    y = _down(_cross(h, g1, g2), self.v, dt)
    return y + jnp.einsum("bthj,jd->btd", g2, self.b[...].astype(dt))


class MonetMoVDE(nnx.Module):
  """Vertical decomposition: expert (i, j) has a top half indexed by i and a bottom half by j.

  E_ij(x) = [V11_i a1_i + V12_i a2_j + b1_i ; V21_j a1_i + V22_j a2_j + b2_j] with
  a1_i = relu2(U1_i x + c1_i), a2_j = relu2(U2_j x + c2_j).
  """

  def __init__(self, cfg: MonetConfig, *, rngs: nnx.Rngs):
    d, e, pd = cfg.hidden_size, cfg.moe_experts, cfg.param_dtype
    m, dh = cfg.moe_dim // 2, cfg.hidden_size // 2
    self.dtype = cfg.dtype
    self.act = get_activation(cfg.hidden_act, "hidden_act")
    keys = KeyStream.of(rngs)
    self.u1, self.u1_bias = _up_weights(keys, d, e, m, pd)
    self.u2, self.u2_bias = _up_weights(keys, d, e, m, pd)
    self.v11, self.v12, self.v21, self.v22 = (_down_kernel(keys, e, m, dh, pd) for _ in range(4))
    self.b1, self.b2 = _output_bias(e, dh, pd), _output_bias(e, dh, pd)

  def __call__(self, x: jax.Array, g1: jax.Array, g2: jax.Array) -> jax.Array:
    dt = self.dtype
    x, g1, g2 = x.astype(dt), g1.astype(dt), g2.astype(dt)  # [M:L165]
    a1 = _up(x, self.u1, self.u1_bias, self.act, dt)
    a2 = _up(x, self.u2, self.u2_bias, self.act, dt)
    top = (_down(a1 * jnp.sum(g1, axis=2)[..., None], self.v11, dt)    # x11: "btim,bthi->btim"
           + _down(_cross(a2, g2, g1), self.v12, dt)                   # x12: cross flow, by i
           + jnp.einsum("bthi,id->btd", g1, self.b1[...].astype(dt)))  # x13
    bottom = (_down(_cross(a1, g1, g2), self.v21, dt)                  # x21: cross flow, by j
              + _down(a2 * jnp.sum(g2, axis=2)[..., None], self.v22, dt)  # x22
              + jnp.einsum("bthj,jd->btd", g2, self.b2[...].astype(dt)))  # x23
    # The first d/2 features come from the i ("left") experts [M:L177].
    return jnp.concatenate([top, bottom], axis=-1)


class DenseBaseline(nnx.Module):
  """moe_decompose='dense': the house MLP (common.layers.mlp.Mlp, biases on) of
  MonetConfig.dense_width units, with the experts' activation and init, for a baseline of equal
  parameters (no routing: g1, g2 unused)."""

  def __init__(self, cfg: MonetConfig, *, rngs: nnx.Rngs):
    self.mlp = Mlp(cfg.hidden_size, cfg.dense_width, activation=cfg.hidden_act,
                   kernel_init=DEFAULT_INIT, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                   sow_stats=False, rngs=rngs)

  def __call__(self, x: jax.Array, g1=None, g2=None) -> jax.Array:
    del g1, g2
    return self.mlp(x)


def make_experts(cfg: MonetConfig, *, rngs: nnx.Rngs) -> nnx.Module:
  if cfg.moe_decompose == "dense":
    return DenseBaseline(cfg, rngs=rngs)
  if cfg.moe_decompose == "vertical":
    return MonetMoVDE(cfg, rngs=rngs)
  return MonetMoHDE(cfg, rngs=rngs)
