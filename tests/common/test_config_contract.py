"""The model-config contract (common/config_contract.py), on a small model dataclass."""
import dataclasses
import types

import jax.numpy as jnp
import ml_collections
import pytest

from common import config_contract


@dataclasses.dataclass(frozen=True)
class Inner:
  rate: float = 0.5


@dataclasses.dataclass(frozen=True)
class Model(config_contract.ModelFields):
  width: int = 8
  depth: int = 2
  sizes: tuple[int, ...] = (1, 2)
  inner: Inner = Inner()

  def __post_init__(self):
    super().__post_init__()
    config_contract.check_positive(self, ("width", "depth"))


def test_base_fields_are_the_model_fields_with_the_trainer_defaults():
  assert config_contract.BASE_FIELDS == ("dtype", "param_dtype", "remat_policy")
  m = Model()
  assert (m.dtype, m.param_dtype, m.remat_policy) == (jnp.float32, jnp.float32, "none")
  with pytest.raises(ValueError, match="config.model.remat_policy='sometimes'"):
    Model(remat_policy="sometimes")


def test_check_positive_names_the_field():
  with pytest.raises(ValueError, match=r"config.model.depth=0 must be a positive integer"):
    Model(depth=0)
  with pytest.raises(ValueError, match=r"M.width=True"):  # a bool is not a size
    config_contract.check_positive(types.SimpleNamespace(width=True), ("width",), path="M")


def test_write_fields_round_trips_through_dataclass_from():
  m = ml_collections.ConfigDict(dict(dtype="bfloat16", param_dtype="float32",
                                     remat_policy="full"))
  config_contract.write_fields(m, Model(width=16, sizes=(3,)), sizes=list)
  assert m.width == 16 and m.sizes == [3] and m.inner.rate == 0.5
  assert m.dtype == "bfloat16" and m.remat_policy == "full"  # base fields are left alone
  config_contract.check_fields(m, {"width": None, "depth": None, "sizes": None,
                                   "inner": ("rate",)})
  back = config_contract.dataclass_from(Model, m, inner=Inner(**m.inner))
  assert back == Model(width=16, sizes=(3,), dtype=jnp.bfloat16, remat_policy="full")
