"""Domain expert masking (paper §5.1, Tab. 3/11): purge a domain's experts, measure the loss change.

Selection rule (paper Tab. 11, MMLU domain masking): expert (r, i, j) is assigned to the target
domain when its routing mass there is >= 2x its mass on the next (best other) domain; experts
with zero mass on the target are never assigned. The assigned experts are purged from every
layer of their routing group: their weight g1_hi * g2_hj is set to 0 (not renormalised), i.e.
the expert's output is removed from the sum.

Monet's expert layers never form g1_hi * g2_hj per expert (they contract g1 and g2 separately),
and at paper scale (E = 512 per sub-router, 262,144 experts) neither a per-token (E, E) weight nor
a dense (E, E) keep mask inside the contractions is affordable. Purging therefore subtracts the
purged experts' own outputs from the unmasked layer:
  y_masked = y - sum_{(i, j) purged} w_ij(x) E_ij(x),   w_ij = sum_h g1_hi g2_hj
  HD: E_ij = V_j a_i + b_j
  VD: E_ij = [V11_i a1_i + V12_i a2_j + b1_i ; V21_j a1_i + V22_j a2_j + b2_j]
over a list of the purged (i, j) pairs, `chunk` pairs at a time: memory O(B T chunk m), work
O(B T n d m) for n purged experts, and nothing of size E^2 per token. The unmasked layer is the
model's own (the up-projections are computed once more for the correction).
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


class PurgedPairs(nnx.Variable):
  """(n, 2) int32 (i, j) of the purged experts, -1 rows padding; not a parameter, so never
  trained or checkpointed."""


class MaskedExperts(nnx.Module):
  """Wraps a MonetMoHDE / MonetMoVDE; runs it with the experts (i, j) in `purged` removed.

  purged: (n, 2) int (i, j) pairs (rows with i < 0 are ignored), e.g. np.argwhere(purge) of an
  (E, E) boolean purge mask. chunk: pairs per step of the correction (module doc).
  """

  def __init__(self, experts: nnx.Module, purged, *, chunk: int = 64):
    if not isinstance(experts, (MonetMoHDE, MonetMoVDE)):
      raise ValueError(f"experts={type(experts).__name__}: expected MonetMoHDE or MonetMoVDE.")
    purged = np.asarray(purged, np.int32).reshape(-1, 2)
    e = experts.u.shape[1] if isinstance(experts, MonetMoHDE) else experts.u1.shape[1]
    if (purged >= e).any():
      raise ValueError(f"purged experts {purged[(purged >= e).any(1)][:3].tolist()}...: "
                       f"indices must be < E={e}.")
    pad = -len(purged) % chunk if len(purged) else chunk
    self.experts = experts
    self.purged = PurgedPairs(jnp.asarray(np.concatenate([purged, -np.ones((pad, 2), np.int32)])))
    self.chunk = chunk

  def __call__(self, x: jax.Array, g1: jax.Array, g2: jax.Array) -> jax.Array:
    m = self.experts
    y = m(x, g1, g2)
    dt = m.dtype
    x, g1, g2 = x.astype(dt), g1.astype(dt), g2.astype(dt)
    up = lambda kern, bias: m.act(jnp.einsum("btd,dem->btem", x, kern[...].astype(dt))
                                  + bias[...].astype(dt))
    w = lambda t: t[...].astype(dt)
    if isinstance(m, MonetMoHDE):
      acts = (up(m.u, m.u_bias),)
    else:
      acts = (up(m.u1, m.u1_bias), up(m.u2, m.u2_bias))

    def purged_outputs(total, pairs):
      valid = pairs[:, 0] >= 0
      i, j = jnp.where(valid, pairs[:, 0], 0), jnp.where(valid, pairs[:, 1], 0)
      coef = jnp.einsum("bthc,bthc->btc", g1[..., i], g2[..., j]) * valid.astype(dt)
      mix = lambda a, kern: jnp.einsum("btcm,cmd,btc->btd", a, kern, coef)
      bias = lambda b: jnp.einsum("btc,cd->btd", coef, b)
      if isinstance(m, MonetMoHDE):
        (a,) = acts
        out = mix(a[:, :, i], w(m.v)[j]) + bias(w(m.b)[j])
      else:
        a1, a2 = acts[0][:, :, i], acts[1][:, :, j]
        top = mix(a1, w(m.v11)[i]) + mix(a2, w(m.v12)[i]) + bias(w(m.b1)[i])
        bottom = mix(a1, w(m.v21)[j]) + mix(a2, w(m.v22)[j]) + bias(w(m.b2)[j])
        out = jnp.concatenate([top, bottom], axis=-1)
      return total + out, None

    pairs = self.purged[...].reshape(-1, self.chunk, 2)
    removed, _ = jax.lax.scan(purged_outputs, jnp.zeros_like(y), pairs)
    return y - removed


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
    layer.moe = MaskedExperts(experts, np.argwhere(purge[l // cfg.moe_groups]))
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
