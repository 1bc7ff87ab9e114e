"""The `config.model` / `config.eval` fields of sparse_jepa, with defaults; configs start here.

Fields of `config.model` (read by task.py, jepa.py, masked_data.py):
  encoder         'custom' (embed_dim, depth, num_heads, mlp_ratio below) or an official preset:
                  vit_tiny | vit_small | vit_base | vit_large | vit_huge | vit_giant
  embed_dim, depth, num_heads, mlp_ratio   the 'custom' encoder's sizes
  patch_size      patch side; config.data.image_size must be a multiple
  pred_depth, pred_emb_dim                 predictor depth and width (heads = encoder heads)
  ema             (start, end) momentum of the target encoder, linear over
                  train.num_steps * ipe_scale steps (official (0.996, 1.0))
  ipe_scale       official ipe_scale: stretches the momentum schedule (1.0 in every official config)
  mask            multi-block masks: enc_mask_scale, pred_mask_scale, aspect_ratio, nenc, npred,
                  min_keep, allow_overlap (official names; masks.MultiBlockMaskCollator), and
                  keep_bucket: 0 keeps the official lengths (batch minimum; one compile per
                  length); b > 1 rounds them down to the ladder floor(b**i), bounding the number
                  of compiled programs (masked_data.bucket_length)
  sparse          False: I-JEPA; True: SparseJEPA (SparsityHead penalty + latent metrics)
  sparsity        SparsityConfig fields (sparsity_head.py documents each choice and its default)
  dtype, param_dtype, remat_policy         from common.train.defaults (remat is not used here)
"""
from __future__ import annotations

import dataclasses

import ml_collections

from common.train import config_variants, defaults
from projects.sparse_jepa.sparsity_head import SparsityConfig


def base_config() -> ml_collections.ConfigDict:
  """Trainer defaults + every sparse_jepa field at the official I-JEPA value where one exists."""
  c = defaults.base_config()
  c.project = "sparse_jepa"
  m = c.model
  m.encoder = "custom"
  m.embed_dim = 192
  m.depth = 12
  m.num_heads = 3
  m.mlp_ratio = 4.0
  m.patch_size = 16
  m.pred_depth = 6
  m.pred_emb_dim = 384
  m.ema = (0.996, 1.0)
  m.ipe_scale = 1.0
  m.mask = ml_collections.ConfigDict(dict(
      enc_mask_scale=(0.85, 1.0), pred_mask_scale=(0.15, 0.2), aspect_ratio=(0.75, 1.5),
      nenc=1, npred=4, min_keep=10, allow_overlap=False, keep_bucket=0.0))
  m.sparse = False
  m.sparsity = ml_collections.ConfigDict(dataclasses.asdict(SparsityConfig()))

  o = c.optimizer
  o.name = "adamw"
  o.schedule = "cosine"
  o.weight_decay_mask = "no_bias_norm"  # = official: no decay on biases and 1-D params

  e = c.eval
  e.evaluators = ("loss", "linear_probe", "lowlevel_probe")
  e.probe_encoder = "target"
  e.probe_train_split = "train"
  e.probe_max_batches = 0
  return c


def finish(c: ml_collections.ConfigDict, sparse: bool) -> ml_collections.ConfigDict:
  """Turns SparseJEPA on or off, and with it the 'latent_sparsity' evaluator."""
  c.model.sparse = sparse
  names = tuple(n for n in c.eval.evaluators if n != "latent_sparsity")
  c.eval.evaluators = names + (("latent_sparsity",) if sparse else ())
  return c


def parse_variants(arg: str | None, groups: tuple[tuple[str, ...], ...],
                   keys: dict | None = None) -> tuple[set[str], dict]:
  """'tiny,sparse,steps=300' -> ({'tiny', 'sparse'}, {'steps': 300}) (common.train.config_variants)."""
  return config_variants.parse(arg, groups=groups, keys=keys or {})
