"""MoE-X's model config: `ModelConfig` (the fields of `config.model`), the paper presets, and
`from_config(config.model)`, which rejects an unknown field before anything is built.

`config.model` is flat; its fields are exactly ModelConfig's:
  vocab_size            0: the tokenizer's vocabulary size (the task fills it in)
  num_layers, num_heads, d_model   the GPT-2 trunk
  max_len               size of the learned position table (>= config.data.seq_len)
  ffn                   the FFN kind, one of KINDS (table below)
  dense_hidden          dense kinds: H
  num_experts, top_k, expert_hidden   M, k, D; equal active parameters: k * D == dense_hidden
  renormalize           learned router: softmax over the top-k (False: full-softmax probabilities)
  router_temperature    guess: the paper gives none (1 = no temperature)
  router_eps            sparsity router: sigma_h = sqrt(var + eps)
  router_bias           guess: the encoder bias enters mu_h and sigma_h
  balance               switch | cv2 | none (form of the balancing loss)
  balance_weight        guess: Switch Transformer's alpha 0.01; the paper's is not recovered
  z_loss_weight         router z-loss (ST-MoE uses 1e-3); 0 = off
  dispatch              dense (compute all experts, mask) | capacity (einsum dispatch, drops)
                        | dropless (sort by expert, common.layers.grouped_matmul)
  capacity_factor       'capacity' dispatch only
  upcycle_mode          projects/moex/upcycle.py: auto | copy | split
  upcycle_noise         relative std of the noise added to up-cycled expert kernels
  dtype, param_dtype    compute / parameter dtype names (common.layers.dtypes)
  remat_policy          per-block rematerialisation (common.layers.remat.POLICIES)

FFN kinds:
  kind              expert activation  router      paper
  dense_gelu        GELU (GPT-2)       -           Tab. 1 'GELU (GPT-2)'
  dense_relu        ReLU               -           Tab. 1 'ReLU'
  dense_geglu       GEGLU (gated)      -           Tab. 1 'GEGLU'
  dense_solu        SoLU (x softmax x) -           Tab. 1 'SoLU' (no post-LayerNorm: a choice)
  dense_relu2       ReLU^2             -           none: the control for Monet's relu2 experts
  switch            GELU               learned     Tab. 1 'Switch' = Tab. 3 'neither'
  moex              ReLU               sparsity    Tab. 1 'MoE-X' = Tab. 3 'both'
  moex_relu_only    ReLU               learned     Tab. 3 'ReLU only'
  moex_router_only  GELU               sparsity    Tab. 3 'sparsity router only'
"""
from __future__ import annotations

import dataclasses

import ml_collections

from common import config_contract
from common.layers import moe, validation

# dense_relu2 is not in the paper: in the superposition task it tells whether Monet's relu2
# activation alone makes units monosemantic.
DENSE = {"dense_gelu": "gelu", "dense_relu": "relu", "dense_geglu": "geglu",
         "dense_solu": "solu", "dense_relu2": "relu2"}
SPARSE = {"switch": ("gelu", "learned"), "moex": ("relu", "sparsity"),
          "moex_relu_only": ("relu", "learned"), "moex_router_only": ("gelu", "sparsity")}
KINDS = tuple(DENSE) + tuple(SPARSE)


@dataclasses.dataclass(frozen=True)
class ModelConfig(config_contract.ModelFields):
  """A MoE-X decoder; the defaults are the paper's chess model (Tab. 1, 'MoE-X chess')."""
  vocab_size: int = 0
  num_layers: int = 8
  num_heads: int = 8
  d_model: int = 512
  max_len: int = 1024
  ffn: str = "moex"
  dense_hidden: int = 4096
  num_experts: int = 8
  top_k: int = 2
  expert_hidden: int = 2048
  renormalize: bool = True
  router_temperature: float = 1.0
  router_eps: float = 1e-6
  router_bias: bool = True
  balance: str = "switch"
  balance_weight: float = 0.01
  z_loss_weight: float = 0.0
  dispatch: str = "dense"
  capacity_factor: float = 1.25
  upcycle_mode: str = "auto"
  upcycle_noise: float = 0.0

  def __post_init__(self):
    super().__post_init__()
    f = lambda name: f"config.model.{name}"
    if isinstance(self.vocab_size, bool) or not isinstance(self.vocab_size, int) or \
        self.vocab_size < 0:
      raise ValueError(f"{f('vocab_size')}={self.vocab_size!r} must be an integer >= 0 "
                       "(0: the tokenizer's vocabulary size).")
    config_contract.check_positive(self, ("num_layers", "num_heads", "d_model", "max_len",
                                          "dense_hidden", "num_experts", "top_k",
                                          "expert_hidden"))
    validation.check_divides(f("d_model"), self.d_model, f("num_heads"), self.num_heads)
    validation.check_choice(f("ffn"), self.ffn, KINDS)
    validation.check_choice(f("balance"), self.balance, moe.BALANCE_LOSSES)
    validation.check_choice(f("dispatch"), self.dispatch, moe.DISPATCH)
    validation.check_choice(f("upcycle_mode"), self.upcycle_mode, moe.UPCYCLE_MODES)
    if self.is_moe and self.top_k > self.num_experts:
      raise ValueError(f"{f('top_k')}={self.top_k} must be <= {f('num_experts')}="
                       f"{self.num_experts}.")
    if self.balance_weight < 0 or self.z_loss_weight < 0:
      raise ValueError(f"{f('balance_weight')}={self.balance_weight!r} and z_loss_weight="
                       f"{self.z_loss_weight!r} must be >= 0 (0 switches the loss off).")
    if self.upcycle_noise < 0:
      raise ValueError(f"{f('upcycle_noise')}={self.upcycle_noise!r} must be >= 0.")

  @property
  def is_moe(self) -> bool:
    return self.ffn in SPARSE

  @property
  def z_loss(self) -> bool:
    return self.z_loss_weight > 0

  @property
  def hidden_units(self) -> int:
    """Width of the hidden code that interpretability evaluates (M*D for MoE, H for dense)."""
    return self.num_experts * self.expert_hidden if self.is_moe else self.dense_hidden


# Paper presets (FFN kind 'moex'; `dataclasses.replace(p, ffn=kind)` gives the table's other
# rows). Language sizes: expert width = dense width / 2 is our guess (equal active parameters at
# top-2; the paper does not report it).
PRESETS: dict[str, ModelConfig] = {
    "MoE-X chess": ModelConfig(),                                          # Tab. 1, 3, 4
    "MoE-X-S": ModelConfig(num_layers=12, num_heads=12, d_model=768, dense_hidden=3072,
                           expert_hidden=1536),                            # Tab. 2, GPT-2 Small
    "MoE-X-M": ModelConfig(num_layers=24, num_heads=16, d_model=1024, dense_hidden=4096,
                           expert_hidden=2048),                            # Tab. 2, GPT-2 Medium
}


def set_fields(m: ml_collections.ConfigDict, preset: str = "MoE-X chess", **overrides) -> None:
  """Writes a preset's fields (and `overrides`) into config.model; dtype, param_dtype and
  remat_policy stay as common.train.defaults set them."""
  validation.check_choice("preset", preset, PRESETS)
  config_contract.write_fields(m, dataclasses.replace(PRESETS[preset], **overrides))


def from_config(m: ml_collections.ConfigDict) -> ModelConfig:
  """config.model -> ModelConfig; an unknown field or a bad value is a ValueError naming it."""
  config_contract.check_fields(m, config_contract.dataclass_fields(ModelConfig))
  return config_contract.dataclass_from(ModelConfig, m)
