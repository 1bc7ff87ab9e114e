"""Fixtures of the Monet tests: golden-data location, a tiny config and model, a jitted forward."""
from __future__ import annotations

import functools
import pathlib

import jax
import numpy as np
import pytest
from flax import nnx

import common  # noqa: F401
from projects.monet import MonetConfig, MonetForCausalLM
from third_party.monet import build_model, expected_torch_shapes

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
GOLDEN = REPO_ROOT.parent / "shared" / "golden" / "monet"
GOLDEN_CASES = ("vd_tiny_s0", "hd_tiny_s1")


def _tiny_config(**overrides) -> MonetConfig:
  """The golden cases' size: 4 layers, d 64, 2 routing heads of 16 experts, k 4."""
  kwargs = dict(vocab_size=256, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                moe_dim=8, moe_heads=2, moe_experts=16, moe_topk=4, moe_groups=2,
                moe_decompose="vertical")
  kwargs.update(overrides)
  return MonetConfig(**kwargs)


def _tiny_model(cfg: MonetConfig | None = None, seed: int = 0) -> MonetForCausalLM:
  """A random tiny model in eval mode, drawn like the golden cases and loaded by the converter.

  Weights are N(0, 0.02) as HF inits them, except what the golden cases re-draw so that nothing
  sits at a constant: router kernels N(0, d^-0.5) (so ~k experts pass the threshold instead of
  top-1), RMSNorm weights 1 + N(0, 0.1), BN running mean N(0, 0.1) / var U(0.5, 1.5), expert biases
  N(0, 0.02). Drawing in numpy and loading through third_party.monet avoids compiling an init
  program (an nnx init costs seconds of XLA compile per tiny model).
  """
  cfg = cfg or _tiny_config()
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
  return build_model(cfg, sd, eval_mode=True)


@functools.partial(jax.jit, static_argnums=(0,))
def _forward(graphdef, state, ids):
  return nnx.merge(graphdef, state)(ids, output_router_probs=True)


def _forward_np(model: MonetForCausalLM, ids) -> tuple[np.ndarray, list]:
  """(logits, router probs) of a jitted eval forward in full fp32."""
  graphdef, state = nnx.split(model)
  with jax.default_matmul_precision("highest"):
    out = _forward(graphdef, state, ids)
  return np.asarray(out.logits), out.router_probs


@pytest.fixture(scope="session")
def golden_dir() -> pathlib.Path:
  if not GOLDEN.is_dir():
    pytest.skip(f"golden data not found at {GOLDEN}")
  return GOLDEN


@pytest.fixture(scope="session")
def tiny_config():
  return _tiny_config


@pytest.fixture(scope="session")
def tiny_model():
  return _tiny_model


@pytest.fixture(scope="session")
def jit_forward():
  return _forward_np
