"""The `config.model` and `config.eval.strided` fields of SEA configs, with their defaults.

config.model:
  mode                 'distill' (frozen dense teacher -> SEA student) | 'lm' (plain LM)
  preset               '' | 'opt-125m' | 'opt-1.3b' (HF shapes; explicit fields below override)
  vocab_size, hidden_size, num_layers, num_heads, ffn_dim, max_position_embeddings
  sea_layers           'all' (official) | 'none' | a tuple of layer indices
  sea_k                keys per query and head on average (official 64)
  sea_predictor_length T_M, compressed width (official 256; divisible by 4)
  sea_nb_factor        Performer features int(D ln D / nbf) (official 8)
  sea_attention_impl   'kernel' (common.kernels.row_sparse_attention) | 'gather' (row-sparse
                       jnp) | 'dense' (reference [T,T] mask)
config.eval.strided (evaluator 'strided', projects/sea/perplexity.py):
  name, source ('wikitext2' | a split of config.data), manual_dir, tokenizer_dir,
  max_length, stride, max_tokens (0 = all), batch_size
"""
import ml_collections

from projects.sea import opt


# The official learning-rate groups (scripts/opt.py): parameters named 'perlin*' (SEA's, ours
# under '.../self_attn/sea/...') at 10x the base lr, all others at 0.2x.
SEA_LR_GROUPS = (("(^|/)sea/", 10.0), (".*", 0.2))


def add_model_fields(m: ml_collections.ConfigDict) -> None:
  m.mode = "distill"
  m.preset = ""
  for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "ffn_dim"):
    setattr(m, name, 0)  # 0: from the preset
  m.max_position_embeddings = 2048
  m.sea_layers = ml_collections.FieldReference("all", field_type=object)
  m.sea_k = 64
  m.sea_predictor_length = 256
  m.sea_nb_factor = 8
  m.sea_attention_impl = "kernel"


def set_preset(m: ml_collections.ConfigDict, name: str) -> None:
  m.preset = name
  m.update(opt.PRESETS[name])


def strided_eval(name: str, source: str, *, max_length: int, stride: int, max_tokens: int = 0,
                 batch_size: int = 1, manual_dir: str = "",
                 tokenizer_dir: str = "") -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name, source=source, manual_dir=manual_dir, tokenizer_dir=tokenizer_dir,
      max_length=max_length, stride=stride, max_tokens=max_tokens, batch_size=batch_size))
