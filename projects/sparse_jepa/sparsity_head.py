"""The SparseJEPA penalty: an oi-VAE style grouped latent head on the encoder embeddings.

What is known (shared/specs/sequence.md §4.1): SparseJEPA adds to I-JEPA a penalty "guided by the
oi-VAE framework" that "combines reconstruction error, KL divergence, and a group-lasso term". The
paper's exact head is NOT FOUND (paper_facts §3.4), so every open choice is a `SparsityConfig`
field. The model built here, per embedding vector s in R^D (a token, or an image's mean token):

  q(z | s) = N(mu(s), diag(exp(logvar(s)))),  [mu, logvar] = Linear(D -> 2K),  K = G * k
  z = mu + exp(logvar / 2) * eps                                  (reparameterised; eval: z = mu)
  s_hat^(p) = f_p(W^(p) z + b^(p))  for each of P output groups p (contiguous chunks of D)
  penalty = recon_weight * 0.5 * mean_d (s - s_hat)^2
          + kl_weight * sum_j KL(q(z_j|s) || N(0, 1)) / D
          + lasso_weight * sum_p sum_g || W^(p)[:, group g] ||_F

`W^(p)` has one column per latent unit; the lasso groups its columns by latent group g, so latent
group g is switched off for output group p when that block reaches zero. With k=1 this is exactly
oi-VAE's `sum_g sum_j ||W^(g)_{:,j}||_2` (Ainsworth et al. 2018, Eq. 5), its output groups being
our P chunks; with P=1 it is a plain latent-group lasso. Reconstruction and KL are normalised per
embedding dim, i.e. the per-token Gaussian ELBO (unit variance) divided by D, so that the weights
are on the scale of the I-JEPA smooth-L1, itself a mean over elements.

Generic pieces that could move to common/layers: `gaussian_kl`, `gaussian_total_correlation`,
`prox_group_lasso`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

import common  # noqa: F401  (no eager sharding: params carry logical names without a mesh)
from common.layers import activations
from common.layers.initializers import trunc_normal
from common.layers.keys import param
from common.layers.linear import Linear

ATTACH = ("context", "full")
POOLING = ("token", "mean")
LASSO_MODES = ("proximal", "subgradient")


@dataclasses.dataclass(frozen=True)
class SparsityConfig:
  """Every open design choice of the SparseJEPA penalty, with a default and why.

  Attributes:
    num_latent_groups: G latent groups (default 8). oi-VAE's point is a few interpretable groups;
      8 groups of 4 keeps K=32 small next to a 192-d ViT-Tiny embedding.
    latent_group_size: k units per latent group (default 4); k=1 gives oi-VAE's per-unit lasso.
    num_output_groups: P contiguous chunks of the embedding, each with its own decoder (oi-VAE's
      observation groups; default 8). Must divide the embedding dim.
    decoder_hidden_dim: 0 (default) makes each f_p the identity (W^(p) maps straight to its chunk);
      > 0 makes f_p a GELU MLP with this hidden width, as oi-VAE's nonlinear group generators. The
      linear default keeps the lasso's meaning plain: a zero block cuts a group from a chunk.
    attach: 'context' (default): the online encoder's outputs on the context patches, already
      computed for the I-JEPA loss, so the penalty costs no extra encoder pass and shapes the very
      encoder that linear probes read. 'full': run the online encoder once more on all patches
      (probes see whole images; one more forward). The target encoder is not offered: it gets no
      gradient, so a penalty there could not shape anything.
    pooling: 'token' (default): one latent per patch embedding (many samples per image, and the
      groups can then share latents across the patch features of one image); 'mean': one latent per
      image from the mean context token, the vector a linear probe sees.
    detach_input: stop the gradient into the encoder through the head's input (default False;
      True turns the head into a passive probe of the representation).
    stop_gradient_target: stop the gradient through the reconstruction target s (default True):
      otherwise the encoder can lower the reconstruction error by shrinking or simplifying its
      embeddings, which fights the I-JEPA objective; the encoder is then shaped only through q(z|s).
    recon_weight: weight of 0.5 * MSE (default 1.0: the ELBO's likelihood term per dim).
    kl_weight: beta of the KL (default 1.0: the plain ELBO, as oi-VAE uses).
    lasso_mode: how the group lasso is optimised. 'proximal' (default; oi-VAE's way,
      paper_facts §3.3): the lasso stays out of the loss and its gradient; after every optimiser
      step the trainer's `project_params` hook soft-thresholds each decoder block at
      threshold = learning_rate * lasso_weight (`prox_group_lasso`), so blocks reach exact zeros.
      oi-VAE takes that step after plain SGD on W; here W moves by the run's optimiser (AdamW),
      whose steps are not lr * gradient, so the threshold is the usual proximal-Adam heuristic.
      'subgradient': the lasso is a loss term like the others (blocks shrink, rarely to zero).
    lasso_weight: lambda of the group lasso (default 1e-3). A guess [U]: the per-dim normalisation
      divides the ELBO by D and by the batch, so oi-VAE's lambda ~1 on a dataset-summed ELBO maps to
      a small number here. Tune it; the sparsity metrics show its effect.
    init_std: std of the head's trunc-normal init (default 0.02, as the ViT).
    kl_active_threshold: a latent unit (or group) is active when its mean KL exceeds this, in nats
      (default 0.01, the usual "active units" cut-off of Burda et al. 2016).
    norm_active_threshold: a decoder block counts as pruned when its Frobenius norm is below this
      (default 1e-3; subgradient training shrinks blocks but rarely zeroes them exactly; use
      `prox_group_lasso` for exact zeros).
    tc_jitter: added to the covariance diagonal before the log-dets of the total correlation.
  """
  num_latent_groups: int = 8
  latent_group_size: int = 4
  num_output_groups: int = 8
  decoder_hidden_dim: int = 0
  attach: str = "context"
  pooling: str = "token"
  detach_input: bool = False
  stop_gradient_target: bool = True
  recon_weight: float = 1.0
  kl_weight: float = 1.0
  lasso_mode: str = "proximal"
  lasso_weight: float = 1e-3
  init_std: float = 0.02
  kl_active_threshold: float = 0.01
  norm_active_threshold: float = 1e-3
  tc_jitter: float = 1e-6

  def __post_init__(self):
    for name in ("num_latent_groups", "latent_group_size", "num_output_groups"):
      value = getattr(self, name)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"SparsityConfig.{name}={value!r}; allowed: an integer >= 1.")
    if not isinstance(self.decoder_hidden_dim, int) or self.decoder_hidden_dim < 0:
      raise ValueError(f"SparsityConfig.decoder_hidden_dim={self.decoder_hidden_dim!r}; "
                       "allowed: an integer >= 0 (0 = linear decoder).")
    if self.attach not in ATTACH:
      raise ValueError(f"SparsityConfig.attach={self.attach!r}; allowed: {ATTACH}.")
    if self.pooling not in POOLING:
      raise ValueError(f"SparsityConfig.pooling={self.pooling!r}; allowed: {POOLING}.")
    if self.lasso_mode not in LASSO_MODES:
      raise ValueError(f"SparsityConfig.lasso_mode={self.lasso_mode!r}; allowed: {LASSO_MODES}.")
    for name in ("recon_weight", "kl_weight", "lasso_weight", "kl_active_threshold",
                 "norm_active_threshold", "tc_jitter"):
      if float(getattr(self, name)) < 0:
        raise ValueError(f"SparsityConfig.{name}={getattr(self, name)!r}; allowed: >= 0.")
    if float(self.init_std) <= 0:
      raise ValueError(f"SparsityConfig.init_std={self.init_std!r}; allowed: > 0.")

  def penalty(self, recon, kl, lasso):
    """The weighted penalty the loss carries: recon and KL always; the lasso only in the
    'subgradient' mode ('proximal' leaves it to the trainer's project_params step)."""
    out = self.recon_weight * recon + self.kl_weight * kl
    return out + self.lasso_weight * lasso if self.lasso_mode == "subgradient" else out

  @property
  def latent_dim(self) -> int:
    return self.num_latent_groups * self.latent_group_size


def gaussian_kl(mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """Per-unit KL(N(mu, exp(logvar)) || N(0, 1)) in nats."""
  return 0.5 * (jnp.square(mu) + jnp.exp(logvar) - 1.0 - logvar)


def block_norms(w: jax.Array, group_size: int) -> jax.Array:
  """Frobenius norms of decoder blocks: w (P, K, H) -> (P, G), G = K / group_size."""
  p, k, h = w.shape
  blocks = w.reshape(p, k // group_size, group_size, h).astype(jnp.float32)
  return jnp.sqrt(jnp.sum(jnp.square(blocks), axis=(2, 3)))


def prox_group_lasso(w: jax.Array, group_size: int, threshold: float) -> jax.Array:
  """Proximal step of threshold * sum ||block||_F: block soft-thresholding (exact zeros).

  The trainer applies it after every optimiser step with threshold = lr * lasso_weight when
  lasso_mode='proximal' (SparseJEPA's `project_params`), as oi-VAE's proximal gradient does.
  """
  p, k, h = w.shape
  norms = block_norms(w, group_size)[:, :, None, None]
  shrink = jnp.maximum(0.0, 1.0 - threshold / jnp.maximum(norms, 1e-30))
  blocks = w.reshape(p, k // group_size, group_size, h) * shrink.astype(w.dtype)
  return blocks.reshape(p, k, h)


def gaussian_total_correlation(cov: jax.Array, group_size: int, jitter: float = 0.0) -> jax.Array:
  """Total correlation among consecutive latent groups of a Gaussian with covariance `cov`.

  TC = sum_g H(z_g) - H(z) = (sum_g logdet cov_gg - logdet cov) / 2, in nats; 0 iff the groups
  are independent. `cov` (K, K), groups are consecutive blocks of `group_size`.
  """
  k = cov.shape[-1]
  cov = cov.astype(jnp.float32) + jitter * jnp.eye(k, dtype=jnp.float32)
  g = k // group_size
  idx = jnp.arange(g)
  blocks = cov.reshape(g, group_size, g, group_size)[idx, :, idx, :]  # (G, k, k) diagonal blocks
  return 0.5 * (jnp.sum(jnp.linalg.slogdet(blocks)[1]) - jnp.linalg.slogdet(cov)[1])


class SparsityHead(nnx.Module):
  """The SparseJEPA latent head (see the module docstring for the model).

  Args:
    embed_dim: D, the width of the embeddings it reads (the encoder's embed_dim).
    config: a SparsityConfig.
    dtype: compute dtype of the matmuls (the losses are always float32); param_dtype: params.

  Call: `head(s, *, train=False, rngs=None)` with s (..., D). train=True draws z by
  reparameterisation with a key from `rngs.dropout()` (the trainer's training-noise stream);
  train=False uses z = mu (evaluation). Returns a dict: mu, logvar, z (..., K); recon (..., D);
  kl_per_unit (..., K); losses 'recon', 'kl', 'lasso' (scalars) and 'penalty' (their weighted sum).
  """

  def __init__(self, embed_dim: int, config: SparsityConfig = SparsityConfig(), *, dtype=None,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    if not isinstance(embed_dim, int) or embed_dim < 1:
      raise ValueError(f"embed_dim={embed_dim!r}; allowed: a positive integer.")
    if embed_dim % config.num_output_groups:
      raise ValueError(f"SparsityConfig.num_output_groups={config.num_output_groups} does not "
                       f"divide embed_dim={embed_dim}.")
    self.config, self.embed_dim, self.dtype = config, embed_dim, dtype
    k, p = config.latent_dim, config.num_output_groups
    chunk = embed_dim // p
    width = config.decoder_hidden_dim or chunk
    init = trunc_normal(config.init_std)
    zeros = nnx.initializers.zeros
    self.posterior = Linear(embed_dim, 2 * k, kernel_axes=("embed", None), kernel_init=init,
                            bias_init=zeros, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    # decoder: one (K, width) map per output group; the lasso acts on its column blocks.
    self.decoder = param(init, (None, None, None), rngs, (p, k, width), param_dtype)
    # Biases are stored flat (1-D) so that every weight-decay rule excludes them, including the
    # ndim >= 2 rule of common/train; they are reshaped to (P, width) at use.
    self.decoder_bias = param(zeros, (None,), None, (p * width,), param_dtype)
    if config.decoder_hidden_dim:
      self.decoder_out = param(init, (None, None, None), rngs, (p, width, chunk), param_dtype)
      self.decoder_out_bias = param(zeros, (None,), None, (p * chunk,), param_dtype)

  def decode(self, z: jax.Array) -> jax.Array:
    """(..., K) latents -> (..., D) reconstruction."""
    dt = self.dtype or z.dtype
    out = jnp.einsum("...k,pkh->...ph", z.astype(dt), self.decoder[...].astype(dt))
    out = out + self.decoder_bias[...].reshape(out.shape[-2:]).astype(dt)
    if self.config.decoder_hidden_dim:
      out = jnp.einsum("...ph,phc->...pc", activations.gelu(out),
                       self.decoder_out[...].astype(dt))
      out = out + self.decoder_out_bias[...].reshape(out.shape[-2:]).astype(dt)
    return out.reshape(*z.shape[:-1], self.embed_dim)

  def lasso(self) -> jax.Array:
    return jnp.sum(block_norms(self.decoder[...], self.config.latent_group_size))

  def __call__(self, s: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> dict[str, Any]:
    cfg = self.config
    if s.shape[-1] != self.embed_dim:
      raise ValueError(f"embeddings have shape {s.shape}; the last dim must be "
                       f"embed_dim={self.embed_dim}.")
    if train and rngs is None:
      raise ValueError("SparsityHead(train=True) samples the latent: pass rngs (an nnx.Rngs "
                       "with a 'dropout' or 'default' stream).")
    s_in = jax.lax.stop_gradient(s) if cfg.detach_input else s
    stats = self.posterior(s_in).astype(jnp.float32)
    mu, logvar = jnp.split(stats, 2, axis=-1)
    z = mu
    if train:
      z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(rngs.dropout(), mu.shape)
    recon = self.decode(z).astype(jnp.float32)
    target = s.astype(jnp.float32)
    if cfg.stop_gradient_target:
      target = jax.lax.stop_gradient(target)
    kl_unit = gaussian_kl(mu, logvar)
    recon_loss = 0.5 * jnp.mean(jnp.square(target - recon))
    kl_loss = jnp.mean(jnp.sum(kl_unit, axis=-1)) / self.embed_dim
    lasso = self.lasso()
    penalty = cfg.penalty(recon_loss, kl_loss, lasso)
    return {"mu": mu, "logvar": logvar, "z": z, "recon": recon, "kl_per_unit": kl_unit,
            "losses": {"recon": recon_loss, "kl": kl_loss, "lasso": lasso, "penalty": penalty}}

  def metrics(self, out: dict[str, Any]) -> dict[str, jax.Array]:
    """Latent-space metrics from a forward's output (all scalars, float32).

    active_units: fraction of the K units whose KL, averaged over samples, exceeds
      kl_active_threshold.
    active_groups_per_example: per sample, the fraction of latent groups whose summed KL exceeds
      the threshold, averaged over samples.
    pruned_blocks: fraction of the P x G decoder blocks with norm below norm_active_threshold.
    dead_groups: fraction of latent groups whose blocks are all below it (unused by every chunk).
    total_correlation: Gaussian estimate (nats) among the latent groups for the aggregate posterior
      of the batch, covariance Cov(mu) + mean(diag(exp(logvar))) (exact for that mixture's
      second moments, and free of sampling noise).
    """
    cfg = self.config
    k, g = cfg.latent_group_size, cfg.num_latent_groups
    kl = out["kl_per_unit"].reshape(-1, cfg.latent_dim)
    mu = out["mu"].reshape(-1, cfg.latent_dim)
    var = jnp.exp(out["logvar"].reshape(-1, cfg.latent_dim))
    active_units = jnp.mean(jnp.mean(kl, axis=0) > cfg.kl_active_threshold)
    group_kl = kl.reshape(-1, g, k).sum(-1)
    active_groups = jnp.mean(group_kl > cfg.kl_active_threshold)
    pruned = block_norms(self.decoder[...], k) < cfg.norm_active_threshold
    centred = mu - mu.mean(0)
    cov = jnp.matmul(centred.T, centred, precision=jax.lax.Precision.HIGHEST) / mu.shape[0]
    cov = cov + jnp.diag(var.mean(0))
    tc = gaussian_total_correlation(cov, k, cfg.tc_jitter)
    return {"active_units": active_units.astype(jnp.float32),
            "active_groups_per_example": active_groups.astype(jnp.float32),
            "pruned_blocks": jnp.mean(pruned).astype(jnp.float32),
            "dead_groups": jnp.mean(jnp.all(pruned, axis=0)).astype(jnp.float32),
            "total_correlation": tc}
