"""Official BiFormer constructor kwargs -> `BiFormerConfig`.

The golden cases (shared/golden/biformer/*/config.json) store the exact kwargs given to the
official class. Omitted kwargs take the official defaults: `BiFormer.__init__`
[B:L137-160] and `BiFormerSTL.__init__` (models/biformer_stl.py L117-132). Options the port
does not model raise ValueError naming the kwarg, its value and what is allowed; options that
do not change the eval forward (checkpointing, the unused `drop_rate`) are accepted.
"""
from __future__ import annotations

from typing import Any, Mapping

from projects.biformer.config import BiFormerConfig

# Official defaults of BiFormer.__init__ [B:L137-160].
BIFORMER_DEFAULTS: dict[str, Any] = dict(
    depth=[3, 4, 8, 3], in_chans=3, num_classes=1000, embed_dim=[64, 128, 320, 512],
    head_dim=64, qk_scale=None, representation_size=None, drop_path_rate=0.0, drop_rate=0.0,
    use_checkpoint_stages=[], n_win=7, kv_downsample_mode="ada_avgpool",
    kv_per_wins=[2, 2, -1, -1], topks=[8, 8, -1, -1], side_dwconv=5,
    layer_scale_init_value=-1, qk_dims=[None, None, None, None], param_routing=False,
    diff_routing=False, soft_routing=False, pre_norm=True, pe=None, pe_stages=[0],
    before_attn_dwconv=3, auto_pad=False, kv_downsample_kernels=[4, 2, 1, 1],
    kv_downsample_ratios=[4, 2, 1, 1], mlp_ratios=[4, 4, 4, 4], param_attention="qkvo",
    mlp_dwconv=False)

# Official defaults of BiFormerSTL.__init__ (biformer_stl.py L117-132). `norm_layer` and
# `pre_head_norm_layer` are classes and cannot come from JSON; the released factory passes
# nn.BatchNorm2d, which is what the port builds.
STL_DEFAULTS: dict[str, Any] = dict(
    in_chans=3, num_classes=1000, depth=[2, 2, 6, 2], embed_dim=[96, 192, 384, 768],
    head_dim=32, qk_scale=None, drop_path_rate=0.0, drop_rate=0.0, use_checkpoint_stages=[],
    mlp_ratios=[4, 4, 4, 4], n_wins=[7, 7, 7, 7], topks=[1, 4, 16, -2], side_dwconv=5)

# kwargs whose value must be exactly this for the port to be equivalent.
_REQUIRED = dict(kv_downsample_mode="identity", param_routing=False, diff_routing=False,
                 soft_routing=False, pe=None, param_attention="qkvo", mlp_dwconv=False,
                 representation_size=None)


def _check_known(kwargs: Mapping[str, Any], defaults: Mapping[str, Any], model: str):
  unknown = sorted(set(kwargs) - set(defaults))
  if unknown:
    raise ValueError(f"unknown {model} kwargs {unknown}; the official constructor takes "
                     f"{sorted(defaults)}.")


def config_from_kwargs(kwargs: Mapping[str, Any], model: str = "BiFormer",
                       **overrides) -> BiFormerConfig:
  """Maps official constructor kwargs of `model` ("BiFormer" or "BiFormerSTL") to a config.

  Args:
    kwargs: the constructor kwargs (config.json "kwargs").
    model: the official class name (config.json "model").
    **overrides: BiFormerConfig fields with no official kwarg (e.g. attention_impl).
  """
  if model == "BiFormer":
    _check_known(kwargs, BIFORMER_DEFAULTS, model)
    kw = {**BIFORMER_DEFAULTS, **kwargs}
    for name, allowed in _REQUIRED.items():
      if kw[name] != allowed and not (name == "representation_size" and not kw[name]):
        raise ValueError(f"{name}={kw[name]!r}: only {allowed!r} is supported (the setting of "
                         "every released BiFormer).")
    if any(q is None for q in kw["qk_dims"]):
      # The official constructor computes heads as qk_dim // head_dim for every stage
      # [B:L212], so None entries fail there too.
      raise ValueError(f"qk_dims={kw['qk_dims']!r}: every entry must be an int.")
    return BiFormerConfig(
        depth=tuple(kw["depth"]), embed_dim=tuple(kw["embed_dim"]),
        qk_dims=tuple(kw["qk_dims"]), head_dim=kw["head_dim"],
        mlp_ratios=tuple(kw["mlp_ratios"]), topks=tuple(kw["topks"]), n_win=kw["n_win"],
        side_dwconv=kw["side_dwconv"], before_attn_dwconv=kw["before_attn_dwconv"],
        layer_scale_init_value=float(kw["layer_scale_init_value"]), pre_norm=kw["pre_norm"],
        auto_pad=kw["auto_pad"], qk_scale=kw["qk_scale"], num_classes=kw["num_classes"],
        in_chans=kw["in_chans"], layout="legacy",
        **{"drop_path_rate": kw["drop_path_rate"], **overrides})
  if model == "BiFormerSTL":
    _check_known(kwargs, STL_DEFAULTS, model)
    kw = {**STL_DEFAULTS, **kwargs}
    n_wins = kw["n_wins"] if not isinstance(kw["n_wins"], int) else [kw["n_wins"]] * 4
    if len(set(n_wins)) != 1:
      raise ValueError(f"n_wins={n_wins!r}: only one n_win for all stages is supported.")
    return BiFormerConfig(
        depth=tuple(kw["depth"]), embed_dim=tuple(kw["embed_dim"]), qk_dims=None,
        head_dim=kw["head_dim"], mlp_ratios=tuple(kw["mlp_ratios"]), topks=tuple(kw["topks"]),
        n_win=n_wins[0], side_dwconv=kw["side_dwconv"], before_attn_dwconv=0,
        qk_scale=kw["qk_scale"], num_classes=kw["num_classes"], in_chans=kw["in_chans"],
        layout="stl", **{"drop_path_rate": kw["drop_path_rate"], **overrides})
  raise ValueError(f"model={model!r}: allowed are 'BiFormer' and 'BiFormerSTL'.")
