"""Compute/parameter dtype names as configs spell them, resolved to numpy dtypes."""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from common.layers import validation

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def resolve_dtype(dtype: Any, field: str = "dtype") -> Any:
  """Maps 'float32' | 'bfloat16' | 'float16' (or a dtype itself, or None) to a jnp dtype."""
  if dtype is None or not isinstance(dtype, str):
    return dtype
  validation.check_choice(field, dtype, DTYPES)
  return DTYPES[dtype]
