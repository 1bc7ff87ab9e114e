"""Activation functions by the names configs use.

Gated names ('geglu', 'geglu_tanh', 'swiglu', 'reglu') tell the MLP to build two input
projections and multiply act(x W0) by (x W1), as in T5 v1.1 / Shazeer (2020); the callable
returned for them is the gate's activation.

'solu' is not elementwise: x * softmax(x) over the last axis, the hidden units (SoLU, Elhage et
al. 2022, "Softmax Linear Units"). Their post-activation LayerNorm is left out (a choice: the
MoE-X paper, whose Tab. 1 has a SoLU row, does not say; an MLP may add a norm itself).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from common.layers import validation


def _relu2(x: jax.Array) -> jax.Array:
  return jnp.square(jax.nn.relu(x))


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),   # exact erf form
    "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu2": _relu2,                                         # squared ReLU (Primer)
    "silu": jax.nn.silu,
    "geglu": lambda x: jax.nn.gelu(x, approximate=False),
    "geglu_tanh": lambda x: jax.nn.gelu(x, approximate=True),  # T2T `geglu` (routing_transformer)
    "swiglu": jax.nn.silu,
    "reglu": jax.nn.relu,
    "solu": lambda x: x * jax.nn.softmax(x, axis=-1),
}
GATED = frozenset({"geglu", "geglu_tanh", "swiglu", "reglu"})


def get_activation(name: str, field: str = "activation") -> Callable[[jax.Array], jax.Array]:
  """Returns the activation called `name`; ValueError listing the allowed names otherwise."""
  validation.check_choice(field, name, ACTIVATIONS)
  return ACTIVATIONS[name]


def is_gated(name: str) -> bool:
  return name in GATED
