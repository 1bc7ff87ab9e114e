"""Activation rematerialisation per transformer block, chosen by name from the config.

`config.model.remat_policy` names one of POLICIES; models wrap each block's forward with
`remat(fn, policy)`, where `fn(block, *args)` is a plain function (nnx.remat refuses bound
methods). What each name saves for the backward pass (everything else is recomputed):

- 'none': no remat; every activation is stored (fastest, most memory).
- 'full' / 'nothing_saveable': only the block's inputs (least memory, one extra forward).
- 'dots_saveable': results of all matmuls (recompute only elementwise ops and softmax).
- 'dots_with_no_batch_dims_saveable': matmuls without batch dimensions, i.e. the projections
  and MLP matmuls but not the attention score/value einsums (the usual choice for long inputs).
- 'save_block_outputs': only the attention and MLP sub-block outputs, which the layers tag with
  `checkpoint_name` ('attn_out', 'mlp_out'); the MLP hidden layer and attention internals are
  recomputed.
"""
from __future__ import annotations

from typing import Callable, TypeVar

import jax
from flax import nnx

from common.layers import validation

F = TypeVar("F", bound=Callable)

BLOCK_OUTPUT_NAMES = ("attn_out", "mlp_out")
POLICIES = ("none", "full", "nothing_saveable", "dots_saveable",
            "dots_with_no_batch_dims_saveable", "save_block_outputs")


def checkpoint_policy(name: str) -> Callable | None:
  """The jax.checkpoint policy for `name` (None: save nothing but inputs)."""
  validation.check_choice("remat_policy", name, POLICIES)
  cp = jax.checkpoint_policies
  return {
      "none": None,
      "full": None,
      "nothing_saveable": cp.nothing_saveable,
      "dots_saveable": cp.dots_saveable,
      "dots_with_no_batch_dims_saveable": cp.dots_with_no_batch_dims_saveable,
      "save_block_outputs": cp.save_only_these_names(*BLOCK_OUTPUT_NAMES),
  }[name]


def remat(fn: F, policy: str) -> F:
  """Wraps `fn(module, *args)` in nnx.remat with the named policy; 'none' returns `fn` as is."""
  checkpoint = checkpoint_policy(policy)
  if policy == "none":
    return fn
  return nnx.remat(fn, policy=checkpoint)
