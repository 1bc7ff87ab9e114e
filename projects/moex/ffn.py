"""The FFN a MoE-X decoder block holds: a dense MLP or a mixture of experts, by config.ffn.

The kinds and their fields are listed in projects/moex/config.py. Equal ACTIVE parameters (the
paper's rule): a dense hidden width H matches top_k experts of expert_hidden = H / top_k (paper
chess: 4096 vs 2 x 2048).
"""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import nnx

from common.layers import mlp, moe
from projects.moex.config import DENSE, SPARSE, ModelConfig


def build(cfg: ModelConfig, *, out_init, dtype: Any = None, param_dtype: Any = jnp.float32,
          rngs: nnx.Rngs) -> nnx.Module:
  """The FFN module; both kinds take (x, token_mask=...) and sow their statistics."""
  init = nnx.initializers.normal(0.02)  # GPT-2
  if not cfg.is_moe:
    return mlp.Mlp(cfg.d_model, cfg.dense_hidden, activation=DENSE[cfg.ffn], kernel_init=init,
                   out_kernel_init=out_init, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
  activation, router = SPARSE[cfg.ffn]
  return moe.SparseMoE(
      cfg.d_model, cfg.expert_hidden, cfg.num_experts, cfg.top_k, activation=activation,
      router=router, renormalize=cfg.renormalize, temperature=cfg.router_temperature,
      eps=cfg.router_eps, router_bias=cfg.router_bias, balance=cfg.balance, z_loss=cfg.z_loss,
      dispatch=cfg.dispatch, capacity_factor=cfg.capacity_factor, kernel_init=init,
      out_kernel_init=out_init, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


def set_capture(ffn: nnx.Module, on: bool) -> str:
  """Switches sowing of the hidden code on/off; returns the name it is sown under."""
  if isinstance(ffn, moe.SparseMoE):
    ffn.sow_hidden = on
    return "mlp_hidden"
  ffn.sow_activations = on
  return "activations"
