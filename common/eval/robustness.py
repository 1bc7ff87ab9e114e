"""Accuracy under additive Gaussian input noise: x + sigma * N(0, 1), at several sigmas.

The Lazy Neuron paper reports better robustness to input corruption with top-k; its own
corruption setup (ImageNet-C) is not confirmed here, so this is a simple, reproducible proxy.
Sigma is in the units of the model's input as the data pipeline delivers it (no clipping, no
re-normalisation). The noise is deterministic: batch i and sigma j draw from
fold_in(fold_in(key(seed), i), j), so repeated evaluations of one checkpoint agree exactly
and every sigma sees an independent draw. Noise is drawn for the whole global batch inside jit,
so it does not depend on the number of processes (with jax_threefry_partitionable).

Keys: '<split>/gaussian_noise/sigma_<s>/accuracy' for each sigma, and
'<split>/gaussian_noise/mean_accuracy' over the sigmas.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from common.eval import accumulate


class GaussianNoiseEvaluator:
  """Args:
    splits: split name(s).
    sigmas: noise standard deviations (0 gives the clean accuracy).
    seed: base seed of the noise.
    forward: (model, batch) -> logits; the noisy input replaces batch[input_key].
    input_key, label_key: batch fields.
    max_batches: stop after this many batches per split (None: the config's eval.max_batches).
  """

  def __init__(self, splits: str | Sequence[str] = "test", *,
               sigmas: Sequence[float] = (0.1, 0.25, 0.5), seed: int = 0,
               forward: accumulate.Forward = accumulate.image_logits, input_key: str = "image",
               label_key: str = "label", max_batches: int | None = None):
    self.splits = accumulate.as_splits(splits)
    self.sigmas = tuple(float(s) for s in sigmas)
    if not self.sigmas or min(self.sigmas) < 0:
      raise ValueError(f"sigmas={sigmas!r} must be a non-empty sequence of values >= 0.")
    self.max_batches = max_batches
    base_key = jax.random.key(seed)
    num_sigmas = len(self.sigmas)

    def batch_sums(model: nnx.Module, batch: Mapping[str, Any], index,
                   sigmas: jax.Array) -> dict[str, jax.Array]:
      x = batch[input_key]
      weight = batch["mask"].astype(jnp.float32)
      batch_key = jax.random.fold_in(base_key, index)
      sums = {"count": jnp.sum(weight)}
      for j in range(num_sigmas):
        noise = jax.random.normal(jax.random.fold_in(batch_key, j), x.shape, jnp.float32)
        noisy = (x.astype(jnp.float32) + sigmas[j] * noise).astype(x.dtype)
        logits = accumulate.clean_forward(forward, model, {**batch, input_key: noisy})
        correct = (jnp.argmax(logits, axis=-1) == batch[label_key]).astype(jnp.float32)
        sums[f"correct/{j}"] = jnp.sum(weight * correct)
      return sums

    self._batch_sums = nnx.jit(batch_sums)

  def __call__(self, model: nnx.Module, ctx: Any) -> dict[str, float]:
    out = {}
    sigmas = jnp.asarray(self.sigmas, jnp.float32)
    for split, sums in accumulate.split_sums(self._batch_sums, model, ctx, self.splits,
                                             self.max_batches, sigmas):
      n = sums.get("count", 0.0)
      accs = [accumulate.safe_ratio(sums.get(f"correct/{j}", 0.0), n)
              for j in range(len(self.sigmas))]
      for sigma, acc in zip(self.sigmas, accs):
        out[f"{split}/gaussian_noise/sigma_{sigma:g}/accuracy"] = acc
      out[f"{split}/gaussian_noise/mean_accuracy"] = sum(accs) / len(accs)
    return out
