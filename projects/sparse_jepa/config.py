"""sparse_jepa's model config: `JEPAConfig`, the official ViT presets, `from_config`, and the
trainer config every file in configs/ starts from (`base_config`).

Fields of `config.model` (checked by `from_config` before anything is built; an unknown field,
here or in `mask` / `sparsity`, is an error naming it):
  encoder         'custom' (embed_dim, depth, num_heads, mlp_ratio below) or an official preset
                  (VIT_PRESETS, the I-JEPA paper's names): vit_tiny | vit_small | vit_base |
                  vit_large | vit_huge | vit_giant
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
  dtype, param_dtype   'float32' | 'bfloat16' | 'float16' (common.layers.dtypes.resolve_dtype)
  remat_policy    common.layers.remat.POLICIES, applied per transformer block of the encoders
                  and the predictor
"""
from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from common import config_contract
from common.train import defaults
from projects.sparse_jepa.sparsity_head import SparsityConfig

# Official vit_* factories (vision_transformer.py L456-509); all use mlp_ratio 4, qkv_bias True,
# LayerNorm eps 1e-6.
VIT_PRESETS: dict[str, dict[str, Any]] = {
    "vit_tiny": dict(embed_dim=192, depth=12, num_heads=3),
    "vit_small": dict(embed_dim=384, depth=12, num_heads=6),
    "vit_base": dict(embed_dim=768, depth=12, num_heads=12),
    "vit_large": dict(embed_dim=1024, depth=24, num_heads=16),
    "vit_huge": dict(embed_dim=1280, depth=32, num_heads=16),
    "vit_giant": dict(embed_dim=1408, depth=40, num_heads=16, mlp_ratio=48 / 11),
}
MASK_FIELDS = ("enc_mask_scale", "pred_mask_scale", "aspect_ratio", "nenc", "npred", "min_keep",
               "allow_overlap", "keep_bucket")
ALLOWED_FIELDS = {
    "encoder": None, "embed_dim": None, "depth": None, "num_heads": None, "mlp_ratio": None,
    "patch_size": None, "pred_depth": None, "pred_emb_dim": None, "ema": None, "ipe_scale": None,
    "mask": MASK_FIELDS, "sparse": None,
    "sparsity": tuple(f.name for f in dataclasses.fields(SparsityConfig)),
}  # + config_contract.BASE_FIELDS (dtype, param_dtype, remat_policy)


@dataclasses.dataclass(frozen=True)
class JEPAConfig(config_contract.ModelFields):
  """The model part of `config.model`, resolved (encoder preset expanded, dtypes resolved).

  The mask fields stay in `config.model.mask` (masked_data.collator_from_config reads them).
  """
  embed_dim: int = 192
  depth: int = 12
  num_heads: int = 3
  mlp_ratio: float = 4.0
  patch_size: int = 16
  pred_depth: int = 6
  pred_emb_dim: int = 384
  ema: tuple[float, float] = (0.996, 1.0)
  ipe_scale: float = 1.0
  sparse: bool = False
  sparsity: SparsityConfig = SparsityConfig()

  def __post_init__(self):
    super().__post_init__()
    config_contract.check_positive(self, ("embed_dim", "depth", "num_heads", "patch_size",
                                          "pred_depth", "pred_emb_dim"))
    ema = tuple(self.ema)
    if len(ema) != 2 or not 0.0 <= ema[0] <= ema[1] <= 1.0:
      raise ValueError(f"ema={ema!r}; allowed: (start, end) with 0 <= start <= end <= 1.")
    if not self.ipe_scale > 0:
      raise ValueError(f"ipe_scale={self.ipe_scale!r}; allowed: > 0.")
    if not isinstance(self.sparse, bool):
      raise ValueError(f"sparse={self.sparse!r}; allowed: True or False.")


def encoder_sizes(m: ml_collections.ConfigDict) -> dict[str, Any]:
  """embed_dim, depth, num_heads, mlp_ratio: from an official preset, or the explicit fields."""
  name = m.get("encoder", "custom")
  if name == "custom":
    return {k: m[k] for k in ("embed_dim", "depth", "num_heads", "mlp_ratio") if k in m}
  if name not in VIT_PRESETS:
    raise ValueError(f"config.model.encoder={name!r}; allowed: 'custom' or "
                     f"{sorted(VIT_PRESETS)}.")
  return {"mlp_ratio": 4.0, **VIT_PRESETS[name]}


def from_config(m: ml_collections.ConfigDict) -> JEPAConfig:
  """The JEPAConfig of `config.model`; a ValueError names any unknown field or bad value."""
  config_contract.check_fields(m, ALLOWED_FIELDS)
  sparsity = config_contract.dataclass_from(SparsityConfig, m.get("sparsity", {}),
                                            path="config.model.sparsity")
  fields = {k: m[k] for k in ("patch_size", "pred_depth", "pred_emb_dim", "ema", "ipe_scale",
                              "sparse", "dtype", "param_dtype", "remat_policy") if k in m}
  return config_contract.dataclass_from(JEPAConfig, {**fields, **encoder_sizes(m)},
                                        sparsity=sparsity)


# --- the trainer config the files in configs/ start from -------------------------------------

def base_config() -> ml_collections.ConfigDict:
  """Trainer defaults + every sparse_jepa field at the official I-JEPA value where one exists."""
  c = defaults.base_config()
  c.project = "sparse_jepa"
  m = c.model
  m.encoder = "custom"
  config_contract.write_fields(m, JEPAConfig())  # vit_tiny sizes, I-JEPA, SparsityConfig's
  m.mask = ml_collections.ConfigDict(dict(
      enc_mask_scale=(0.85, 1.0), pred_mask_scale=(0.15, 0.2), aspect_ratio=(0.75, 1.5),
      nenc=1, npred=4, min_keep=10, allow_overlap=False, keep_bucket=0.0))

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

