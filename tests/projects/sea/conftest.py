"""Shared helpers for the SEA tests: layers with random official-layout weights, built fast.

Eager NNX initialisation compiles many tiny ops (seconds on a shared CPU), so test layers are
built abstractly and filled through the real converter from a random official state_dict.
"""
import numpy as np
import pytest
from flax import nnx

import projects.sea  # noqa: F401  (switches off eager sharding before any Param is built)
from projects.sea.attention import SEAAttention
from projects.sea.performer import nb_features_for
from third_party.sea_attention import load_state_dict


def random_official_state_dict(rng, *, num_heads, head_dim, predictor_length, max_pos,
                               nb_factor=8):
  """A PerlinAttention-shaped state_dict with random values (dead conv rows hold garbage)."""
  h, d, tm = num_heads, head_dim, predictor_length
  m = nb_features_for(d, nb_factor)
  c = 2 * h
  n = lambda *s, scale=1.0: (rng.standard_normal(s) * scale).astype(np.float32)  # noqa: E731
  sd = {
      "v_eye_learned": n(1, 1, d, d),
      "v_eye_learned_causal": n(1, 1, max_pos, d),
      "attention_predictor_enc_head_embd": np.eye(h, dtype=np.float32),
      "performer.projection_matrix": n(m, d),
      "performer_proj_updater.calls_since_last_redraw": np.array(0, np.int64),
      "attention_predictor_enc_per_layer.0.weight": n(2 * d * h, 3 * d * h, scale=0.02),
      "attention_predictor_enc_per_layer.0.bias": n(2 * d * h),
      "attention_predictor_enc_per_layer.1.weight": n(2 * d * h),
      "attention_predictor_enc_per_layer.1.bias": n(2 * d * h),
      "attention_predictor_enc.0.weight": n(2 * d, 3 * d, scale=(3 * d) ** -0.5),
      "attention_predictor_enc.0.bias": n(2 * d, scale=0.1),
      "attention_predictor_enc.1.weight": 1 + n(2 * d, scale=0.1),
      "attention_predictor_enc.1.bias": n(2 * d, scale=0.1),
      "attention_predictor_dec_row.0.weight": n(tm // 2, 2 * d, scale=(2 * d) ** -0.5),
      "attention_predictor_dec_row.0.bias": n(tm // 2, scale=0.1),
      "attention_predictor_cnn.0.module.weight": 1 + n(tm // 4, scale=0.1),
      "attention_predictor_cnn.0.module.bias": n(tm // 4, scale=0.1),
      "attention_predictor_cnn.2.module.weight": 1 + n(tm, scale=0.1),
      "attention_predictor_cnn.2.module.bias": n(tm, scale=0.1),
      "attention_predictor_dec_scaler.0.weight": n(2, 2 * d, scale=(2 * d) ** -0.5),
      "attention_predictor_dec_scaler.0.bias": n(2, scale=0.1),
  }
  for name in ("norm_performer", "norm_partial", "norm_random", "norm"):
    sd[f"{name}.weight"], sd[f"{name}.bias"] = n(h * d), n(h * d)
  sd["performer_proj_updater.instance.projection_matrix"] = sd["performer.projection_matrix"]
  for idx, (cin, cout, k) in {0: (c, c, 3), 2: (c, c, 3), 5: (c, h, 1)}.items():
    prefix = f"attention_predictor_cnn.1.module.net.{idx}.module"
    mask = np.zeros((cout, cin, 2 * k - 1, k), np.float32)
    mask[:, :, :k, :] = 1
    sd[f"{prefix}.weight"] = n(cout, cin, 2 * k - 1, k, scale=(cin * k * k) ** -0.5)
    sd[f"{prefix}.weight_mask"] = mask
    sd[f"{prefix}.bias"] = n(cout, scale=0.1)
  return sd


def make_layer(*, seed=0, num_heads=2, head_dim=16, k=4, predictor_length=32, max_pos=256,
               attention_impl="xla", **kwargs):
  """SEAAttention (abstract build) filled with random official-layout weights."""
  layer = nnx.eval_shape(lambda: SEAAttention(
      num_heads, head_dim, k=k, predictor_length=predictor_length,
      max_position_embeddings=max_pos, attention_impl=attention_impl, rngs=nnx.Rngs(0), **kwargs))
  sd = random_official_state_dict(np.random.default_rng(seed), num_heads=num_heads,
                                  head_dim=head_dim, predictor_length=predictor_length,
                                  max_pos=max_pos)
  load_state_dict(layer, sd)
  return layer


@pytest.fixture(scope="session")
def layer_factory():
  return make_layer


@pytest.fixture(scope="session")
def official_state_dict_factory():
  return random_official_state_dict
