"""The FFN a MoE-X decoder block holds: a dense MLP or a mixture of experts, by config.ffn.

The kinds and their fields are listed in projects/moex/config.py. Equal ACTIVE parameters (the
paper's rule): a dense hidden width H matches top_k experts of expert_hidden = H / top_k (paper
chess: 4096 vs 2 x 2048).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common.layers import intermediates, mlp, moe
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


def capture(model: nnx.Module, enable: Callable[[nnx.Module], dict[str, str]]
            ) -> Callable[[Any], dict[str, np.ndarray]]:
  """inputs -> {key: sown value}, jitted once per input shape, for the sow names that
  `enable(probe)` switches on in a copy of `model` and returns as {key: name} (each name's
  first layer's value). `model` itself never sows."""
  graphdef, state = nnx.split(model)
  probe = nnx.merge(graphdef, state)
  names = enable(probe)
  graphdef, state = nnx.split(probe)

  @jax.jit
  def run(state, inputs):
    m = nnx.merge(graphdef, state)
    m(inputs)
    stats = nnx.pop(m, nnx.Intermediate)
    return {k: next(iter(intermediates.layer_stats(stats, v).values())) for k, v in names.items()}

  return lambda inputs: {k: np.asarray(v) for k, v in run(state, inputs).items()}


def _layer_mean(stats: nnx.State, name: str) -> jax.Array | None:
  values = list(intermediates.layer_stats(stats, name).values())
  return jnp.mean(jnp.stack(values), axis=0) if values else None


def stats_metrics(stats: nnx.State, cfg: ModelConfig) -> tuple[jax.Array, dict]:
  """(auxiliary loss, metrics) from the FFNs' sown statistics, averaged over the layers.

  aux = balance_weight * balance_loss + z_loss_weight * z_loss (MoE kinds; 0 for dense).
  Metrics: balance_loss, moe/load_max, moe/load_min, moe/dropped ('capacity'), z_loss (when
  on) and hidden_l0 (nonzero hidden units per token: of the M*D code, or of the H dense units).
  """
  if not cfg.is_moe:  # 'act_nonzero' is a per-example fraction of the H hidden units
    return jnp.zeros((), jnp.float32), {
        "hidden_l0": jnp.mean(_layer_mean(stats, "act_nonzero")) * cfg.dense_hidden}
  balance = _layer_mean(stats, "balance_loss")
  load = _layer_mean(stats, "expert_load")
  metrics = {"balance_loss": balance, "moe/load_max": jnp.max(load),
             "moe/load_min": jnp.min(load), "hidden_l0": _layer_mean(stats, "hidden_l0")}
  aux = cfg.balance_weight * balance
  if cfg.z_loss:
    metrics["z_loss"] = _layer_mean(stats, "z_loss")
    aux = aux + cfg.z_loss_weight * metrics["z_loss"]
  dropped = _layer_mean(stats, "dropped")
  if dropped is not None:
    metrics["moe/dropped"] = dropped
  return aux, metrics
