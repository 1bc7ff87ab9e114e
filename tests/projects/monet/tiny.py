"""The Monet tests' tiny model: its config, random weights drawn like the golden cases, a jitted
forward. Tests import it as `from tests.projects.monet import tiny`."""
from __future__ import annotations

import functools

import jax
import numpy as np
from flax import nnx

import common  # noqa: F401
from projects.monet import MonetConfig, MonetForCausalLM
from third_party.monet import build_model, expected_torch_shapes


def config(**overrides) -> MonetConfig:
  """The golden cases' size: 4 layers, d 64, 2 routing heads of 16 experts, k 4."""
  kwargs = dict(vocab_size=256, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                moe_dim=8, moe_heads=2, moe_experts=16, moe_topk=4, moe_groups=2,
                moe_decompose="vertical")
  kwargs.update(overrides)
  return MonetConfig(**kwargs)


def model(cfg: MonetConfig | None = None, seed: int = 0) -> MonetForCausalLM:
  """A random tiny model, drawn like the golden cases and loaded by the converter.

  Call it with train=False (the default) so that the routers use the drawn running statistics.

  Weights are N(0, 0.02) as HF inits them, except what the golden cases re-draw so that nothing
  sits at a constant: router kernels N(0, d^-0.5) (so ~k experts pass the threshold instead of
  top-1), RMSNorm weights 1 + N(0, 0.1), BN running mean N(0, 0.1) / var U(0.5, 1.5), expert biases
  N(0, 0.02). Drawing in numpy and loading through third_party.monet avoids compiling an init
  program (an nnx init costs seconds of XLA compile per tiny model).
  """
  cfg = cfg or config()
  rng = np.random.default_rng(seed)
  sd = {}
  for key, shape in expected_torch_shapes(cfg).items():
    if key.endswith("running_mean"):
      value = 0.1 * rng.standard_normal(shape)
    elif key.endswith("running_var"):
      value = rng.uniform(0.5, 1.5, shape)
    elif "norm" in key or "layernorm" in key:
      value = 1.0 + 0.1 * rng.standard_normal(shape)
    elif ".router.w" in key:
      value = cfg.hidden_size ** -0.5 * rng.standard_normal(shape)
    else:
      value = 0.02 * rng.standard_normal(shape)
    sd[key] = value.astype(np.float32)
  return build_model(cfg, sd)


@functools.partial(jax.jit, static_argnums=(0,))
def _forward(graphdef, state, ids):
  return nnx.merge(graphdef, state)(ids, output_router_probs=True)


def forward(model: MonetForCausalLM, ids) -> tuple[np.ndarray, list]:
  """(logits, router probs) of a jitted eval forward in full fp32."""
  graphdef, state = nnx.split(model)
  with jax.default_matmul_precision("highest"):
    out = _forward(graphdef, state, ids)
  return np.asarray(out.logits), out.router_probs
