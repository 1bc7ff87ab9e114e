"""The FFN kinds a MoE-X decoder block can hold, and the config fields that describe them.

  kind              expert activation  router      paper
  dense_gelu        GELU (GPT-2)       -           Tab. 1 'GELU (GPT-2)'
  dense_relu        ReLU               -           Tab. 1 'ReLU'
  switch            GELU               learned     Tab. 1 'Switch' = Tab. 3 'neither'
  moex              ReLU               sparsity    Tab. 1 'MoE-X' = Tab. 3 'both'
  moex_relu_only    ReLU               learned     Tab. 3 'ReLU only'
  moex_router_only  GELU               sparsity    Tab. 3 'sparsity router only'

Equal ACTIVE parameters (the paper's rule): a dense hidden width H matches top_k experts of
expert_hidden = H / top_k (paper chess: 4096 vs 2 x 2048).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import ml_collections
from flax import nnx

from common.layers import mlp, moe, validation

DENSE = {"dense_gelu": "gelu", "dense_relu": "relu"}
SPARSE = {"switch": ("gelu", "learned"), "moex": ("relu", "sparsity"),
          "moex_relu_only": ("relu", "learned"), "moex_router_only": ("gelu", "sparsity")}
KINDS = tuple(DENSE) + tuple(SPARSE)


@dataclasses.dataclass(frozen=True)
class FFNConfig:
  """Fields of config.model that shape the FFN (see add_fields for their meaning)."""
  kind: str = "moex"
  dense_hidden: int = 4096
  num_experts: int = 8
  top_k: int = 2
  expert_hidden: int = 2048
  renormalize: bool = True
  temperature: float = 1.0
  router_eps: float = 1e-6
  router_bias: bool = True
  balance: str = "switch"
  z_loss: bool = False
  dispatch: str = "dense"
  capacity_factor: float = 1.25

  @property
  def is_moe(self) -> bool:
    return self.kind in SPARSE

  @property
  def hidden_units(self) -> int:
    """Width of the hidden code that interpretability evaluates (M*D for MoE, H for dense)."""
    return self.num_experts * self.expert_hidden if self.is_moe else self.dense_hidden


def add_fields(m: ml_collections.ConfigDict) -> None:
  """Adds the FFN fields with the paper-scale defaults to config.model."""
  m.ffn = "moex"                 # one of KINDS
  m.dense_hidden = 4096          # dense kinds: H
  m.num_experts = 8              # M
  m.top_k = 2                    # k
  m.expert_hidden = 2048         # D; equal active params: k * D == dense_hidden
  m.renormalize = True           # learned router: softmax over the top-k (False: full-softmax probs)
  m.router_temperature = 1.0     # guess: the paper gives none (1 = no temperature)
  m.router_eps = 1e-6            # sparsity router: sigma_h = sqrt(var + eps)
  m.router_bias = True           # guess: encoder bias enters mu_h and sigma_h
  m.balance = "switch"           # switch | cv2 | none (form of the balancing loss)
  m.balance_weight = 0.01        # guess: Switch Transformer's alpha; the paper's is not recovered
  m.z_loss_weight = 0.0          # router z-loss (ST-MoE uses 1e-3); 0 = off
  m.dispatch = "dense"           # dense (compute all, mask) | capacity (einsum dispatch, drops)
  m.capacity_factor = 1.25


def from_config(m: ml_collections.ConfigDict) -> FFNConfig:
  validation.check_choice("config.model.ffn", m.ffn, KINDS)
  cfg = FFNConfig(kind=m.ffn, dense_hidden=m.dense_hidden, num_experts=m.num_experts,
                  top_k=m.top_k, expert_hidden=m.expert_hidden, renormalize=m.renormalize,
                  temperature=m.router_temperature, router_eps=m.router_eps,
                  router_bias=m.router_bias, balance=m.balance,
                  z_loss=m.z_loss_weight > 0, dispatch=m.dispatch,
                  capacity_factor=m.capacity_factor)
  if cfg.is_moe and cfg.top_k > cfg.num_experts:
    raise ValueError(f"config.model.top_k={cfg.top_k} must be <= config.model.num_experts="
                     f"{cfg.num_experts}.")
  if m.balance_weight < 0 or m.z_loss_weight < 0:
    raise ValueError(f"config.model.balance_weight={m.balance_weight!r} and z_loss_weight="
                     f"{m.z_loss_weight!r} must be >= 0 (0 switches the loss off).")
  return cfg


def build(cfg: FFNConfig, d_model: int, *, out_init, dtype: Any = None,
          param_dtype: Any = jnp.float32, rngs: nnx.Rngs) -> nnx.Module:
  """The FFN module; both kinds take (x, token_mask=...) and sow their statistics."""
  init = nnx.initializers.normal(0.02)  # GPT-2
  if not cfg.is_moe:
    return mlp.Mlp(d_model, cfg.dense_hidden, activation=DENSE[cfg.kind], kernel_init=init,
                   out_kernel_init=out_init, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
  activation, router = SPARSE[cfg.kind]
  return moe.SparseMoE(
      d_model, cfg.expert_hidden, cfg.num_experts, cfg.top_k, activation=activation,
      router=router, renormalize=cfg.renormalize, temperature=cfg.temperature,
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
