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


# --- the layer as a linear map of its hidden code (interpretability reads) --------------------
#
# The features ("MLP hidden units") of a Monet layer are what its down projections read: the
# routing-weighted expert hidden activations, over ALL experts. Monet computes every expert's
# hidden units densely and applies the routing weights g1, g2 before the down projection, so this
# code is exact, costs no extra expert compute, and is zero where the router sends no mass. It is
# the analogue of MoE-X's routing-weighted M*D expert units, and the layer's output is linear in it:
#
#   HD: q[j] = sum_h g2_hj sum_i g1_hi relu2(U_i u + c_i)              F = E * m
#       moe(u) = q @ V + sum_h g2_h @ b
#   VD: a1 = relu2(U1 u + c1), a2 = relu2(U2 u + c2) (each E x m/2); s1 = sum_h g1_h, s2 = sum_h g2_h
#       code = [a1 * s1, cross(a2; g2 -> g1), cross(a1; g1 -> g2), a2 * s2]   F = 2 * E * m
#       moe(u) = [code[:2] @ [V11; V12] + s1 @ b1,  code[2:] @ [V21; V22] + s2 @ b2]
#
# VD has twice HD's features because each half of its hidden units feeds two down projections
# (its own half of the output and, routed to the other sub-router's experts, the other half);
# a best-feature-per-property score (coverage) gets more candidates from VD at equal width.
# Readers: interpret/board.py (chess board states), superposition.py (the ground-truth toy).


def hidden_code(experts: nnx.Module, u: jax.Array, g1: jax.Array, g2: jax.Array) -> jax.Array:
  """(B, T, F) routing-weighted hidden code of a MonetMoHDE / MonetMoVDE (the comment above)."""
  dt = experts.dtype
  u, g1, g2 = u.astype(dt), g1.astype(dt), g2.astype(dt)
  flat = lambda h: h.reshape(*h.shape[:2], -1)  # (B, T, E, m) -> (B, T, E*m), expert-major
  if isinstance(experts, MonetMoHDE):
    return flat(_cross(_up(u, experts.u, experts.u_bias, experts.act, dt), g1, g2))
  if isinstance(experts, MonetMoVDE):
    a1 = _up(u, experts.u1, experts.u1_bias, experts.act, dt)
    a2 = _up(u, experts.u2, experts.u2_bias, experts.act, dt)
    s1, s2 = jnp.sum(g1, axis=2)[..., None], jnp.sum(g2, axis=2)[..., None]
    return jnp.concatenate([flat(a1 * s1), flat(_cross(a2, g2, g1)),
                            flat(_cross(a1, g1, g2)), flat(a2 * s2)], axis=-1)
  raise ValueError(f"experts={type(experts).__name__}: expected MonetMoHDE or MonetMoVDE.")


def down_projection(experts: nnx.Module) -> jax.Array:
  """(F, d) matrix W with moe(u) = hidden_code @ W + output_bias (float32)."""
  if isinstance(experts, MonetMoHDE):
    v = experts.v[...]
    return v.reshape(-1, v.shape[-1]).astype(jnp.float32)
  if isinstance(experts, MonetMoVDE):
    rows = lambda *vs: jnp.concatenate([v[...].reshape(-1, v.shape[-1]) for v in vs])
    top, bottom = rows(experts.v11, experts.v12), rows(experts.v21, experts.v22)
    zeros = jnp.zeros_like(top)
    return jnp.block([[top, zeros], [zeros, bottom]]).astype(jnp.float32)
  raise ValueError(f"experts={type(experts).__name__}: expected MonetMoHDE or MonetMoVDE.")


def output_bias(experts: nnx.Module, g1: jax.Array, g2: jax.Array) -> jax.Array:
  """(B, T, d) routed expert output biases: the part of moe(u) not linear in the code."""
  if isinstance(experts, MonetMoHDE):
    return jnp.einsum("bthj,jd->btd", g2, experts.b[...])
  if isinstance(experts, MonetMoVDE):
    return jnp.concatenate([jnp.einsum("bthi,id->btd", g1, experts.b1[...]),
                            jnp.einsum("bthj,jd->btd", g2, experts.b2[...])], axis=-1)
  raise ValueError(f"experts={type(experts).__name__}: expected MonetMoHDE or MonetMoVDE.")


def make_experts(cfg: MonetConfig, *, rngs: nnx.Rngs) -> nnx.Module:
  if cfg.moe_decompose == "dense":
    return DenseBaseline(cfg, rngs=rngs)
  if cfg.moe_decompose == "vertical":
    return MonetMoVDE(cfg, rngs=rngs)
  return MonetMoHDE(cfg, rngs=rngs)
