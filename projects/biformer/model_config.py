"""BiFormerConfig: the architecture hyper-parameters of a BiFormer, validated on construction.

Field names follow the official constructor (rayleizhu/BiFormer@1697bbb models/biformer.py
`BiFormer.__init__`) where the meaning is the same, so presets and converted checkpoints read
alike. Options the released models never switch on (parametric / differentiable / soft
routing, kv down-sampling other than identity, `pe`, `mlp_dwconv`) are not modelled.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

# `layout` picks the macro layout: "legacy" is `models/biformer.py` (released T/S/B: two-conv
# stem, conv+BN downsampling, DW3x3 conv pos-embed); "stl" is `models/biformer_stl.py`
# (Swin-T layout: patch-4 conv stem, BN+conv2x2 patch merging, no pos-embed).
LAYOUTS = ("legacy", "stl")
# "gather" is the pure-jnp routed attention in bra.py; "block_sparse" is the shared kernel.
ATTENTION_IMPLS = ("gather", "block_sparse")


def _four(name: str, value: Sequence) -> tuple:
  value = tuple(value)
  if len(value) != 4:
    raise ValueError(f"{name}={value!r}: expected 4 entries, one per stage.")
  return value


@dataclasses.dataclass(frozen=True)
class BiFormerConfig:
  """Hyper-parameters of a BiFormer (defaults: BiFormer-T, 1000 classes).

  Attributes:
    depth: blocks per stage.
    embed_dim: channels per stage.
    qk_dims: query/key channels per stage for BRA (None: equal to embed_dim).
    head_dim: BRA heads per stage are qk_dims[i] // head_dim (official `nheads`).
    mlp_ratios: MLP hidden width per stage, as a multiple of embed_dim.
    topks: routed regions per query region per stage. -2: global attention with LePE
      (`AttentionLePE`, 8 heads, no qkv bias); -1: the same without LePE (`Attention`).
    n_win: regions per side; a stage map is split into n_win x n_win regions.
    side_dwconv: kernel of the LePE depthwise conv (0 disables it).
    before_attn_dwconv: kernel of the DW conv position embedding (3, or 0 for none).
    layer_scale_init_value: > 0 enables per-channel layer scale with this initial value.
    pre_norm: pre-norm residual blocks (True, released) or post-norm.
    auto_pad: zero-pad stage maps to multiples of n_win inside BRA (needed when the map is
      not divisible; segmentation / detection use it).
    qk_scale: overrides the attention scale (None: qk_dim**-0.5 in BRA, (C/8)**-0.5 in
      stage-4 attention).
    num_classes: classifier outputs; 0 returns the pooled features.
    in_chans: input image channels.
    drop_path_rate: stochastic depth, linearly increased over all blocks.
    layout: "legacy" (released T/S/B) or "stl" (the Swin-T-layout ablation model).
    attention_impl: routed attention backend, "gather" or "block_sparse".
  """
  depth: tuple[int, ...] = (2, 2, 8, 2)
  embed_dim: tuple[int, ...] = (64, 128, 256, 512)
  qk_dims: tuple[int, ...] | None = None
  head_dim: int = 32
  mlp_ratios: tuple[float, ...] = (3, 3, 3, 3)
  topks: tuple[int, ...] = (1, 4, 16, -2)
  n_win: int = 7
  side_dwconv: int = 5
  before_attn_dwconv: int = 3
  layer_scale_init_value: float = -1.0
  pre_norm: bool = True
  auto_pad: bool = False
  qk_scale: float | None = None
  num_classes: int = 1000
  in_chans: int = 3
  drop_path_rate: float = 0.0
  layout: str = "legacy"
  attention_impl: str = "gather"

  def __post_init__(self):
    set_ = lambda k, v: object.__setattr__(self, k, v)  # frozen dataclass normalisation
    set_("depth", _four("depth", self.depth))
    set_("embed_dim", _four("embed_dim", self.embed_dim))
    set_("qk_dims", self.embed_dim if self.qk_dims is None else _four("qk_dims", self.qk_dims))
    set_("mlp_ratios", _four("mlp_ratios", self.mlp_ratios))
    set_("topks", _four("topks", self.topks))
    for name in ("depth", "embed_dim", "qk_dims"):
      for v in getattr(self, name):
        if not isinstance(v, int) or v < 1:
          raise ValueError(f"{name}={getattr(self, name)!r}: entries must be positive ints.")
    for i, k in enumerate(self.topks):
      if not isinstance(k, int) or k < -2 or k == 0:
        raise ValueError(f"topks[{i}]={k!r}: allowed are k >= 1 (routed attention), -1 "
                         "(global attention) or -2 (global attention with LePE).")
      if k > self.n_win**2:
        raise ValueError(f"topks[{i}]={k}: at most n_win**2={self.n_win**2} regions exist.")
      if k > 0:
        qk, c = self.qk_dims[i], self.embed_dim[i]
        heads = qk // self.head_dim if self.head_dim > 0 else 0
        # Same rule as the official assert [BRA:L128], with heads = qk_dim // head_dim.
        if heads < 1 or qk % heads or c % heads:
          raise ValueError(f"qk_dims[{i}]={qk}, embed_dim[{i}]={c}, head_dim={self.head_dim}: "
                           "need heads = qk_dims // head_dim >= 1 dividing both qk_dims and "
                           "embed_dim.")
      elif self.embed_dim[i] % 8:
        raise ValueError(f"embed_dim[{i}]={self.embed_dim[i]}: stage attention with topk="
                         f"{k} always has 8 heads, so embed_dim must be divisible by 8.")
    for i, r in enumerate(self.mlp_ratios):
      if r <= 0 or int(r * self.embed_dim[i]) < 1:
        raise ValueError(f"mlp_ratios[{i}]={r!r}: must be positive.")
    if not isinstance(self.n_win, int) or self.n_win < 1:
      raise ValueError(f"n_win={self.n_win!r}: must be a positive int.")
    if self.side_dwconv < 0 or (self.side_dwconv and self.side_dwconv % 2 == 0):
      raise ValueError(f"side_dwconv={self.side_dwconv!r}: allowed are 0 or an odd kernel size.")
    if self.before_attn_dwconv not in (0, 3):
      # The official pos-embed conv hard-codes padding=1 [B:L64-65]; only kernel 3 keeps the
      # map size, any other kernel breaks the residual in the official code as well.
      raise ValueError(f"before_attn_dwconv={self.before_attn_dwconv!r}: allowed are 3 or 0.")
    if self.num_classes < 0:
      raise ValueError(f"num_classes={self.num_classes!r}: must be >= 0.")
    if self.in_chans < 1:
      raise ValueError(f"in_chans={self.in_chans!r}: must be >= 1.")
    if not 0.0 <= self.drop_path_rate < 1.0:
      raise ValueError(f"drop_path_rate={self.drop_path_rate!r}: allowed range is [0, 1).")
    if self.layout not in LAYOUTS:
      raise ValueError(f"layout={self.layout!r}: allowed are {LAYOUTS}.")
    if self.layout == "legacy" and self.embed_dim[0] % 2:
      raise ValueError(f"embed_dim[0]={self.embed_dim[0]}: the legacy stem's first conv has "
                       "embed_dim[0] // 2 channels, so it must be even.")
    if self.attention_impl not in ATTENTION_IMPLS:
      raise ValueError(f"attention_impl={self.attention_impl!r}: allowed are {ATTENTION_IMPLS}.")
    if self.attention_impl == "block_sparse":
      for i, k in enumerate(self.topks):
        if k > 0 and self.qk_dims[i] != self.embed_dim[i]:
          # The shared kernel takes k and v of one shape [B, H, T, D].
          raise ValueError(f"attention_impl='block_sparse' needs qk_dims == embed_dim in "
                           f"routed stages; stage {i} has qk_dims={self.qk_dims[i]}, "
                           f"embed_dim={self.embed_dim[i]}.")

  def num_heads(self, stage: int) -> int:
    """BRA heads of a stage (official `nheads = [dim // head_dim for dim in qk_dims]`)."""
    return self.qk_dims[stage] // self.head_dim

  def drop_path_rates(self) -> list[list[float]]:
    """Per-block drop-path rates: linspace(0, rate, sum(depth)) split by stage [B:L213]."""
    total = sum(self.depth)
    flat = [self.drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
    out, start = [], 0
    for d in self.depth:
      out.append(flat[start:start + d])
      start += d
    return out
