"""Monet losses: the HF shifted cross-entropy and the paper's routing auxiliary losses.

The auxiliary losses are not in the official code (its `aux_loss` field is never set, [M:L37,
L583-590]); they follow the paper (arXiv 2412.04139v4 §3 "Load Balancing Loss", eq. 16-18) as read in
shared/specs/experts.md §1.7:

  L_unif = -(1/2H) sum_h sum_i (1/E) log p1_hi  -  (1/2H) sum_h sum_j (1/E) log p2_hj
  L_amb  =  (1/2H) sum_h (1 - max_i g1_hi)      +  (1/2H) sum_h (1 - max_j g2_hj)
  L      =  L_LM + lambda * (L_unif + L_amb),   lambda = 1e-3 (paper App. B.1)

where p_h is the routing distribution averaged over the (non-padding) tokens of the batch: a
per-token g is zero off the selected experts, so its log would be -inf, and the reported
uniformity values (6.26-6.43 >= log 512, paper Tab. 7) only make sense for the batch mean. For
uniform usage L_unif = log E. L_amb is averaged over tokens. How the paper combines the routing
groups is not stated; `routing_aux_losses` averages over router layers (`reduce="mean"`) or sums.
`RoutingLoss` weighs them by the config.model fields and adds the routing metrics; the LM task and
the superposition task both use it.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections

IGNORE_INDEX = -100  # torch CrossEntropyLoss default, used by HF for padded labels
AUX_LOSS_WEIGHT = 1e-3  # lambda of paper eq. 18 (App. B.1)


def causal_lm_loss(logits: jax.Array, labels: jax.Array, ignore_index: int = IGNORE_INDEX) -> jax.Array:
  """HF causal-LM loss: position t predicts labels[t+1]; mean over the non-ignored targets."""
  if logits.shape[:2] != labels.shape:
    raise ValueError(f"labels.shape={labels.shape}: expected {logits.shape[:2]} (logits batch, tokens).")
  shift_logits = logits[:, :-1].astype(jnp.float32)
  shift_labels = labels[:, 1:]
  valid = shift_labels != ignore_index
  safe = jnp.where(valid, shift_labels, 0)
  logp = jax.nn.log_softmax(shift_logits, axis=-1)
  nll = -jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
  # torch returns nan for zero valid targets; so does 0/0 here, which keeps the two in agreement.
  return jnp.sum(jnp.where(valid, nll, 0.0)) / jnp.sum(valid)


def _token_weights(g: jax.Array, mask: jax.Array | None) -> jax.Array:
  if g.ndim != 4:
    raise ValueError(f"routing probs shape={g.shape}: expected (batch, tokens, heads, experts).")
  if mask is None:
    return jnp.ones(g.shape[:2], jnp.float32)
  if mask.shape != g.shape[:2]:
    raise ValueError(f"mask.shape={mask.shape}: expected {g.shape[:2]} (batch, tokens).")
  return mask.astype(jnp.float32)


def _uniformity_one(g: jax.Array, mask: jax.Array | None, eps: float) -> jax.Array:
  w = _token_weights(g, mask)
  mean = jnp.einsum("bthe,bt->he", g.astype(jnp.float32), w) / jnp.maximum(jnp.sum(w), 1.0)
  # -(1/H) sum_h (1/E) sum_e log p_he  =  mean over (h, e) of -log p.
  return -jnp.mean(jnp.log(mean + eps))


def _ambiguity_one(g: jax.Array, mask: jax.Array | None) -> jax.Array:
  w = _token_weights(g, mask)
  per_token = jnp.mean(1.0 - jnp.max(g.astype(jnp.float32), axis=-1), axis=-1)  # mean over heads
  return jnp.sum(per_token * w) / jnp.maximum(jnp.sum(w), 1.0)


def uniformity_loss(g1: jax.Array, g2: jax.Array, mask: jax.Array | None = None,
                    eps: float = 1e-9) -> jax.Array:
  """Paper eq. 16 on the token-averaged routing distributions of one router (log E when uniform)."""
  return 0.5 * (_uniformity_one(g1, mask, eps) + _uniformity_one(g2, mask, eps))


def ambiguity_loss(g1: jax.Array, g2: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Paper eq. 17: mean over tokens of (1/2H) sum_h (1 - max g1_h) + (1 - max g2_h)."""
  return 0.5 * (_ambiguity_one(g1, mask) + _ambiguity_one(g2, mask))


def routing_aux_losses(router_probs: Sequence[tuple[jax.Array, jax.Array] | None],
                       mask: jax.Array | None = None, reduce: str = "mean",
                       eps: float = 1e-9) -> dict[str, jax.Array]:
  """Uniformity and ambiguity over all router layers of `MonetOutput.router_probs`.

  Args:
    router_probs: one (g1, g2) per layer, None at layers without a router (those are skipped: they
      reuse a router already counted).
    mask: optional (B, T) token mask (1 = real token) excluding padding from the statistics.
    reduce: "mean" or "sum" over router layers.
    eps: added inside the log of the uniformity loss.

  Returns:
    {"uniformity": ..., "ambiguity": ...}, float32 scalars.
  """
  if reduce not in ("mean", "sum"):
    raise ValueError(f"reduce={reduce!r}: allowed values are 'mean', 'sum'.")
  pairs = [p for p in router_probs if p is not None]
  if not pairs:
    raise ValueError("router_probs: no router layer found (call the model with output_router_probs=True).")
  unif = jnp.stack([uniformity_loss(g1, g2, mask, eps) for g1, g2 in pairs])
  amb = jnp.stack([ambiguity_loss(g1, g2, mask) for g1, g2 in pairs])
  agg = jnp.mean if reduce == "mean" else jnp.sum
  return {"uniformity": agg(unif), "ambiguity": agg(amb)}


def routing_metrics(router_probs, weights: jax.Array) -> dict[str, jax.Array]:
  """Usage/token entropies, selected count and utilisation (see the module docstring)."""
  total = jnp.maximum(jnp.sum(weights), 1.0)
  out = {"usage_entropy": [], "token_entropy": [], "selected": [], "utilisation": []}
  for pair in router_probs:
    if pair is None:
      continue
    for g in pair:
      g = g.astype(jnp.float32)
      mean = jnp.einsum("bthe,bt->he", g, weights) / total
      out["usage_entropy"].append(jnp.mean(-jnp.sum(mean * jnp.log(mean + 1e-9), axis=-1)))
      tok = -jnp.sum(jnp.where(g > 0, g * jnp.log(jnp.where(g > 0, g, 1.0)), 0.0), axis=-1)
      out["token_entropy"].append(jnp.sum(jnp.mean(tok, -1) * weights) / total)
      chosen = (g > 0).astype(jnp.float32)
      out["selected"].append(jnp.sum(jnp.mean(jnp.sum(chosen, -1), -1) * weights) / total)
      used = jnp.einsum("bthe,bt->he", chosen, weights) > 0
      out["utilisation"].append(jnp.mean(used.astype(jnp.float32)))
  return {f"routing/{k}": jnp.mean(jnp.stack(v)) for k, v in out.items()}


@dataclasses.dataclass(frozen=True)
class RoutingLoss:
  """unif_weight * L_unif + amb_weight * L_amb over the router layers, with their metrics; the
  weights and the reduction over router layers are config.model fields (checked here)."""
  unif_weight: float = AUX_LOSS_WEIGHT
  amb_weight: float = AUX_LOSS_WEIGHT
  reduce: str = "mean"

  @classmethod
  def from_config(cls, m: ml_collections.ConfigDict) -> "RoutingLoss":
    out = cls(float(m.get("unif_weight", AUX_LOSS_WEIGHT)),
              float(m.get("amb_weight", AUX_LOSS_WEIGHT)), m.get("aux_reduce", "mean"))
    for name, value in (("unif_weight", out.unif_weight), ("amb_weight", out.amb_weight)):
      if value < 0:
        raise ValueError(f"config.model.{name}={value!r}: must be >= 0 (0 switches it off).")
    if out.reduce not in ("mean", "sum"):
      raise ValueError(f"config.model.aux_reduce={out.reduce!r}: allowed 'mean', 'sum'.")
    return out

  def __call__(self, router_probs, weights: jax.Array) -> tuple[jax.Array, dict]:
    """(loss, metrics); (0, {}) when no layer routes (the 'dense' baseline)."""
    if not any(router_probs):
      return jnp.zeros((), jnp.float32), {}
    aux = routing_aux_losses(router_probs, mask=weights, reduce=self.reduce)
    loss = self.unif_weight * aux["uniformity"] + self.amb_weight * aux["ambiguity"]
    return loss, dict(**aux, **routing_metrics(router_probs, weights))
