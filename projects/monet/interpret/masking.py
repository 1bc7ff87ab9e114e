"""Domain expert masking (paper §5.1, Tab. 3/11): purge a domain's experts, measure the loss change.

Selection rule (paper Tab. 11, MMLU domain masking): expert (r, i, j) is assigned to the target
domain when its routing mass there is >= 2x its mass on the next (best other) domain; experts
with zero mass on the target are never assigned. The assigned experts are purged from every
layer of their routing group: their weight g1_hi * g2_hj is set to 0 (not renormalised), i.e.
the expert's output is removed from the sum.

Monet's expert layers never form g1_hi * g2_hj per expert (they contract g1 and g2 separately),
so purging expands the product with a keep mask K (E, E) inside the contractions:
  w_hij = g1_hi g2_hj K_ij
  HD: q_j = sum_{h,i} w_hij a_i;  y = V q + sum_{h,i,j} w_hij b_j
  VD: top = V11 sum_{h,j} w a1_i + V12 sum_{h,j} w a2_j + sum w b1_i  (indexed by i)
      bottom = V21 sum_{h,i} w a1_i + V22 sum_{h,i} w a2_j + sum w b2_j (indexed by j)
With K = 1 these are the unmasked layers (each row of g sums to 1). The cost grows with E^2,
fine for the demo (E = 32); a 512 x 512 mask at 1.4B would want the contraction order chosen
per layer.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from projects.monet.experts import MonetMoHDE, MonetMoVDE
from projects.monet.model import MonetForCausalLM


def select_experts(masses: np.ndarray, target: int, *, ratio: float = 2.0) -> np.ndarray:
  """Boolean mask (...) of the experts assigned to domain `target`.

  Args:
    masses: (D, ...) routing mass of every expert on each of D >= 2 domains.
    target: index of the target domain.
    ratio: an expert is assigned when mass[target] >= ratio * max over the other domains.
  """
  masses = np.asarray(masses)
  if masses.ndim < 2 or masses.shape[0] < 2:
    raise ValueError(f"masses.shape={masses.shape}: expected (domains >= 2, ...experts).")
  if not 0 <= target < masses.shape[0]:
    raise ValueError(f"target={target!r}: must be in [0, {masses.shape[0]}).")
  if not ratio > 0:
    raise ValueError(f"ratio={ratio!r}: must be > 0.")
  others = np.max(np.delete(masses, target, axis=0), axis=0)
  return (masses[target] > 0) & (masses[target] >= ratio * others)


class ExpertKeep(nnx.Variable):
  """A (E, E) 0/1 mask of the experts kept; not a parameter, so never trained or checkpointed."""


class MaskedExperts(nnx.Module):
  """Wraps a MonetMoHDE / MonetMoVDE; runs it with expert (i, j) weighted by keep[i, j]."""

  def __init__(self, experts: nnx.Module, keep: jax.Array):
    if not isinstance(experts, (MonetMoHDE, MonetMoVDE)):
      raise ValueError(f"experts={type(experts).__name__}: expected MonetMoHDE or MonetMoVDE.")
    self.experts = experts
    self.keep = ExpertKeep(jnp.asarray(keep, jnp.float32))

  def __call__(self, x: jax.Array, g1: jax.Array, g2: jax.Array) -> jax.Array:
    m = self.experts
    dt = m.dtype
    x, g1, g2 = x.astype(dt), g1.astype(dt), g2.astype(dt)
    k = self.keep[...].astype(dt)
    up = lambda kern, bias: m.act(jnp.einsum("btd,dem->btem", x, kern[...].astype(dt))
                                  + bias[...].astype(dt))
    down = lambda h, kern: jnp.einsum("btem,emd->btd", h, kern[...].astype(dt))
    # Per-expert weights summed over heads: wij[b,t,i,j] = sum_h g1_hi g2_hj K_ij.
    wij = jnp.einsum("bthi,bthj,ij->btij", g1, g2, k)
    if isinstance(m, MonetMoHDE):
      a = up(m.u, m.u_bias)
      q = jnp.einsum("btij,btim->btjm", wij, a)
      return down(q, m.v) + jnp.einsum("btij,jd->btd", wij, m.b[...].astype(dt))
    a1, a2 = up(m.u1, m.u1_bias), up(m.u2, m.u2_bias)
    w_i, w_j = jnp.sum(wij, axis=3), jnp.sum(wij, axis=2)  # (b, t, E): summed over j / over i
    top = (down(a1 * w_i[..., None], m.v11)
           + down(jnp.einsum("btij,btjm->btim", wij, a2), m.v12)
           + jnp.einsum("bti,id->btd", w_i, m.b1[...].astype(dt)))
    bottom = (down(jnp.einsum("btij,btim->btjm", wij, a1), m.v21)
              + down(a2 * w_j[..., None], m.v22)
              + jnp.einsum("btj,jd->btd", w_j, m.b2[...].astype(dt)))
    return jnp.concatenate([top, bottom], axis=-1)


def masked_model(model: MonetForCausalLM, purge: np.ndarray) -> MonetForCausalLM:
  """A copy of `model` with the experts where `purge` (R, E, E) is True removed.

  Router r's mask applies to every layer that uses its routing (its group of moe_groups layers).
  """
  cfg = model.config
  shape = (len(cfg.router_layers), cfg.moe_experts, cfg.moe_experts)
  purge = np.asarray(purge, bool)
  if purge.shape != shape:
    raise ValueError(f"purge.shape={purge.shape}: expected (routers, E, E) = {shape}.")
  copy = nnx.clone(model)
  for l, layer in enumerate(copy.layers):
    experts = layer.moe.experts if isinstance(layer.moe, MaskedExperts) else layer.moe
    keep = 1.0 - purge[l // cfg.moe_groups].astype(np.float32)
    layer.moe = MaskedExperts(experts, jnp.asarray(keep))
  return copy


@nnx.jit
def _loss_sum(model, windows):
  logits = model(windows[:, :-1]).logits
  logp = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.sum(jnp.take_along_axis(logp, windows[:, 1:, None], axis=-1))


def domain_losses(model: MonetForCausalLM, windows: Mapping[str, np.ndarray], *,
                  batch_size: int = 32) -> dict[str, float]:
  """Mean next-token cross-entropy (nats) of `model` on each domain's (N, T + 1) windows."""
  out = {}
  for name, w in windows.items():
    if len(w) == 0:
      raise ValueError(f"windows[{name!r}] is empty.")
    total = sum(float(_loss_sum(model, jnp.asarray(w[s:s + batch_size])))
                for s in range(0, len(w), batch_size))
    out[name] = total / (w.shape[0] * (w.shape[1] - 1))
  return out


def masking_experiment(model: MonetForCausalLM, masses: Mapping[str, np.ndarray],
                       eval_windows: Mapping[str, np.ndarray], *, ratio: float = 2.0,
                       random_controls: int = 1, seed: int = 0,
                       batch_size: int = 32) -> list[dict]:
  """For each target domain: purge its experts; loss change on the target and on the others.

  Args:
    model: a Monet in eval mode.
    masses: {domain: (R, E, E) routing mass} from routing_mass on each domain's 'stats' windows.
    eval_windows: {domain: (N, T + 1)} windows the losses are measured on (other files).
    ratio: the selection rule's factor (paper: 2).
    random_controls: also purge this many random expert sets of the same size per router, and
      report their mean loss changes (a control: how much does removing any that many experts
      cost?). 0 for none.

  Returns:
    One dict per target: target, purged (count), purged_fraction, purged_mass_target (the
    fraction of the target's routing mass the purged experts carried), base/masked loss per
    domain, delta_target, delta_others (mean over the other domains) and, with controls,
    random_delta_target / random_delta_others.
  """
  names = list(masses)
  if sorted(names) != sorted(eval_windows):
    raise ValueError(f"masses domains {sorted(names)} != eval_windows domains "
                     f"{sorted(eval_windows)}.")
  stack = np.stack([np.asarray(masses[n]) for n in names])
  base = domain_losses(model, eval_windows, batch_size=batch_size)
  rng = np.random.default_rng(seed)
  rows = []
  for t, name in enumerate(names):
    purge = select_experts(stack, t, ratio=ratio)
    after = domain_losses(masked_model(model, purge), eval_windows, batch_size=batch_size)
    others = [n for n in names if n != name]
    row = dict(target=name, purged=int(purge.sum()), purged_fraction=float(purge.mean()),
               purged_mass_target=float(stack[t][purge].sum() / max(stack[t].sum(), 1e-12)),
               base=base, masked=after, delta_target=after[name] - base[name],
               delta_others=float(np.mean([after[n] - base[n] for n in others])))
    if random_controls:
      dt, do = [], []
      for _ in range(random_controls):
        rand = np.zeros_like(purge)
        for r in range(purge.shape[0]):  # same count per router as the domain's purge
          flat = rng.choice(purge[r].size, size=int(purge[r].sum()), replace=False)
          rand[r].flat[flat] = True
        ctrl = domain_losses(masked_model(model, rand), eval_windows, batch_size=batch_size)
        dt.append(ctrl[name] - base[name])
        do.append(np.mean([ctrl[n] - base[n] for n in others]))
      row.update(random_delta_target=float(np.mean(dt)), random_delta_others=float(np.mean(do)))
    rows.append(row)
  return rows
