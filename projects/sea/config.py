"""SEA's model config: `OPTConfig`, the paper presets, and `from_config(config.model)`.

config.model fields (checked by `from_config` before anything is built):
  mode                 'distill' (frozen dense teacher -> SEA student) | 'lm' (plain LM)
  preset               '' | 'opt-125m' | 'opt-1.3b' (HF shapes; nonzero shape fields override)
  vocab_size, hidden_size, num_layers, num_heads, ffn_dim   0 = from the preset
  max_position_embeddings
  tie_word_embeddings  True (every OPT checkpoint, HF's default): logits = h @ embed_tokens^T;
                       False: a separate lm_head [d, V] without bias (HF's untied lm_head).
  matrix_init          init of the weight matrices (q/k/v/out projections, FFN, an untied
                       lm_head): 'normal' (HF: N(0, 0.02), as embeddings and positions always
                       are) | 'lecun' (lecun normal, std fan_in^-0.5). Only a model trained
                       from scratch reads it (weights loaded from HF or a run replace it).
                       configs/recall.py trains its 1-layer d_model-64 teacher with
                       tie_word_embeddings=False and 'lecun': with OPT's tied head and
                       N(0, 0.02) matrices that teacher sat at chance on the recall task in
                       every small trial (README).
  sea_layers           'all' (official) | 'none' | a tuple of layer indices
  sea_k                keys per query and head on average (official 64)
  sea_predictor_length T_M, compressed width (official 256; divisible by 4)
  sea_nb_factor        Performer features int(D ln D / nbf) (official 8)
  student_attention    what replaces the attention of the `sea_layers` (the student, in
                       'distill'); the q, k, v projections, out_proj and the rest of OPT are
                       the same for every kind:
                       'sea' (default): the official SEA layer (attention.py).
                       'performer': SEA's causal Performer on (q, k, v) alone (performer.py,
                         int(D ln D / sea_nb_factor) features): the estimator's backbone
                         without the estimate, top-k and sparse path, i.e. the paper's
                         "Performer" row; its context goes through out_proj as the dense
                         attention's does. No trained parameters of its own.
                       'local': causal sliding-window softmax attention through
                         common.kernels.block_sparse_attention with a band of blocks
                         (common.layers.mixers.band_blocks). Block B = sea_k / 8 (sea_k must
                         be a multiple of 8 and T a multiple of B); query block i reads key
                         blocks i-7 .. i, causally, so query t reads keys
                         max(0, t - 7B - (t mod B)) .. t: between sea_k - B + 1 and sea_k of
                         the most recent keys, itself included (at most sea_k, as SEA's
                         average budget; fewer near the start). `local_block(sea_k)`.
  attention_impl       'official': the dense [T, T] keep mask of the official code (golden
                       tests); or a common.kernels impl for the row-sparse op
                       (`row_sparse_attention`): 'auto' (default) | 'xla' | 'reference' |
                       'pallas_tpu' | 'pallas_gpu' | 'interpret'
  dtype, param_dtype, remat_policy   compute / parameter dtype, per-layer remat
config.eval.strided (evaluator 'strided', projects/sea/perplexity.py), built by `strided_eval`:
  name, source ('wikitext2' | a split of config.data), manual_dir, tokenizer_dir,
  max_length, stride, max_tokens (0 = all), batch_size
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import ml_collections

from common import config_contract
from common.kernels import dispatch
from common.layers import remat as remat_lib

MODES = ("distill", "lm")
# The official computation (dense keep mask), then the kernel vocabulary, passed on unchanged.
OFFICIAL = "official"
ATTENTION_IMPLS = (OFFICIAL,) + dispatch.IMPLS
SHAPE_FIELDS = ("vocab_size", "hidden_size", "num_layers", "num_heads", "ffn_dim",
                "max_position_embeddings")
MODEL_FIELDS = ("mode", "preset", *SHAPE_FIELDS, "tie_word_embeddings", "matrix_init",
                "sea_layers", "sea_k", "sea_predictor_length", "sea_nb_factor",
                "student_attention", "attention_impl")
MATRIX_INITS = ("normal", "lecun")
# What replaces the attention of the SEA layers (see the module docstring).
STUDENT_ATTENTIONS = ("sea", "performer", "local")
LOCAL_BLOCKS_PER_WINDOW = 8  # 'local': the window of sea_k keys is 8 blocks of sea_k / 8

# The official learning-rate groups (scripts/opt.py): parameters named 'perlin*' (SEA's, ours
# under '.../self_attn/sea/...') at 10x the base lr, all others at 0.2x.
SEA_LR_GROUPS = (("(^|/)sea/", 10.0), (".*", 0.2))


@dataclasses.dataclass(frozen=True)
class OPTConfig:
  """Shapes and attention choice of one OPT model (the fields of HF config.json we use)."""
  vocab_size: int
  hidden_size: int
  num_layers: int
  num_heads: int
  ffn_dim: int
  max_position_embeddings: int = 2048
  tie_word_embeddings: bool = True    # HF OPT: LM head = embed_tokens^T
  matrix_init: str = "normal"         # 'normal' (HF N(0, 0.02)) | 'lecun' (from-scratch demos)
  sea_layers: tuple[int, ...] = ()    # layers whose attention is SEA; () = dense OPT
  sea_k: int = 64                     # official scripts/opt.py defaults
  sea_predictor_length: int = 256
  sea_nb_factor: int = 8
  student_attention: str = "sea"      # 'sea' | 'performer' | 'local' in the sea_layers
  attention_impl: str = "auto"
  dtype: Any = None                   # compute dtype (None: from the parameters)
  param_dtype: Any = jnp.float32
  remat_policy: str = "none"          # common.layers.remat, per decoder layer

  def __post_init__(self):
    for name in SHAPE_FIELDS:
      value = getattr(self, name)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"OPTConfig.{name}={value!r} is not allowed: use a positive integer.")
    if self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size={self.hidden_size} is not divisible by num_heads="
                       f"{self.num_heads}; OPT needs head_dim = hidden_size / num_heads.")
    if self.matrix_init not in MATRIX_INITS:
      raise ValueError(f"matrix_init={self.matrix_init!r} is not allowed: use one of "
                       f"{MATRIX_INITS}.")
    if not isinstance(self.tie_word_embeddings, bool):
      raise ValueError(f"tie_word_embeddings={self.tie_word_embeddings!r} is not allowed: "
                       "True (OPT) or False.")
    bad = [i for i in self.sea_layers if not 0 <= i < self.num_layers]
    if bad or len(set(self.sea_layers)) != len(self.sea_layers):
      raise ValueError(f"sea_layers={self.sea_layers} is not allowed: give distinct layer indices "
                       f"in [0, {self.num_layers}).")
    if self.attention_impl not in ATTENTION_IMPLS:
      raise ValueError(f"attention_impl={self.attention_impl!r} is not allowed: use one of "
                       f"{ATTENTION_IMPLS}.")
    if self.student_attention not in STUDENT_ATTENTIONS:
      raise ValueError(f"student_attention={self.student_attention!r} is not allowed: use one of "
                       f"{STUDENT_ATTENTIONS}.")
    if self.student_attention == "local" and self.sea_layers and (
        self.sea_k < LOCAL_BLOCKS_PER_WINDOW or self.sea_k % LOCAL_BLOCKS_PER_WINDOW):
      raise ValueError(f"sea_k={self.sea_k} is not allowed with student_attention='local': it "
                       f"must be a multiple of {LOCAL_BLOCKS_PER_WINDOW} (the window is "
                       f"{LOCAL_BLOCKS_PER_WINDOW} blocks of sea_k / {LOCAL_BLOCKS_PER_WINDOW}).")
    remat_lib.checkpoint_policy(self.remat_policy)  # raises on an unknown name

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  def dense(self) -> "OPTConfig":
    """The same model with every layer dense (the teacher)."""
    return dataclasses.replace(self, sea_layers=(), student_attention="sea")


def local_block(sea_k: int) -> int:
  """'local' student: the block size B = sea_k / 8 of its band (see the module docstring)."""
  return sea_k // LOCAL_BLOCKS_PER_WINDOW


def all_layers(num_layers: int) -> tuple[int, ...]:
  return tuple(range(num_layers))


def _paper(**shapes) -> OPTConfig:
  # The official recipe (scripts/opt.py): SEA on every layer, k 64, T_M 256, nbf 8.
  return OPTConfig(**shapes, sea_layers=all_layers(shapes["num_layers"]), sea_k=64,
                   sea_predictor_length=256, sea_nb_factor=8)


# HF config.json shapes (facebook/opt-125m, facebook/opt-1.3b) with the paper's SEA settings.
PRESETS: dict[str, OPTConfig] = {
    "opt-125m": _paper(vocab_size=50272, hidden_size=768, num_layers=12, num_heads=12,
                       ffn_dim=3072, max_position_embeddings=2048),
    "opt-1.3b": _paper(vocab_size=50272, hidden_size=2048, num_layers=24, num_heads=32,
                       ffn_dim=8192, max_position_embeddings=2048),
}
# Parameter counts of the HF checkpoints (position table of 2050 rows included, LM head tied).
HF_PARAM_COUNTS = {"opt-125m": 125_239_296}


def model_fields() -> dict[str, Any]:
  """The defaults of every SEA config.model field (configs start from these)."""
  return dict(mode="distill", preset="", vocab_size=0, hidden_size=0, num_layers=0, num_heads=0,
              ffn_dim=0, max_position_embeddings=2048, tie_word_embeddings=True,
              matrix_init="normal",
              sea_layers=ml_collections.FieldReference("all", field_type=object),
              sea_k=64, sea_predictor_length=256, sea_nb_factor=8, student_attention="sea",
              attention_impl="auto")


def set_preset(m: ml_collections.ConfigDict, name: str) -> None:
  """config.model = the preset's shapes and SEA settings (sea_layers 'all', as the paper)."""
  if name not in PRESETS:
    raise ValueError(f"preset {name!r} is unknown; allowed: {sorted(PRESETS)}.")
  p = PRESETS[name]
  m.preset = name
  m.update({f: getattr(p, f) for f in SHAPE_FIELDS + ("sea_k", "sea_predictor_length",
                                                       "sea_nb_factor")})
  m.sea_layers = "all"


def _sea_layers(value, num_layers: int) -> tuple[int, ...]:
  if isinstance(value, str):
    if value not in ("all", "none", ""):
      raise ValueError(f"config.model.sea_layers={value!r}; allowed: 'all', 'none' or a tuple of "
                       "layer indices, e.g. --config.model.sea_layers='(0, 1)'.")
    return all_layers(num_layers) if value == "all" else ()
  return tuple(value)


def from_config(m: ml_collections.ConfigDict) -> OPTConfig:
  """OPTConfig from `config.model` (preset, then nonzero explicit shape fields), checked."""
  config_contract.check_fields(m, MODEL_FIELDS)
  if m.get("mode", "distill") not in MODES:
    raise ValueError(f"config.model.mode={m.mode!r}; allowed: {MODES}.")
  preset = m.get("preset", "")
  if preset and preset not in PRESETS:
    raise ValueError(f"config.model.preset={preset!r}; allowed: {sorted(PRESETS)} or ''.")
  shapes = {f: getattr(PRESETS[preset], f) for f in SHAPE_FIELDS} if preset else {}
  shapes.update({f: m[f] for f in SHAPE_FIELDS if m.get(f)})
  sea_layers = _sea_layers(m.get("sea_layers", "all"), shapes.get("num_layers", 0))
  return config_contract.dataclass_from(OPTConfig, m, **shapes, sea_layers=sea_layers)


def strided_eval(name: str, source: str, *, max_length: int, stride: int, max_tokens: int = 0,
                 batch_size: int = 1, manual_dir: str = "",
                 tokenizer_dir: str = "") -> ml_collections.ConfigDict:
  """The config.eval.strided section (see the module docstring)."""
  return ml_collections.ConfigDict(dict(
      name=name, source=source, manual_dir=manual_dir, tokenizer_dir=tokenizer_dir,
      max_length=max_length, stride=stride, max_tokens=max_tokens, batch_size=batch_size))
