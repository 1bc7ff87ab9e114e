"""The model-config contract: `config.model` checked against what a project declares.

Every project keeps, in `projects/<name>/config.py`, its model dataclass, the paper presets
under their paper names, and `from_config(config.model)`. `from_config` calls
`check_fields(m, allowed)` first, so that a misspelled or unsupported field stops the run
before anything is built or compiled, with one line naming the field and listing the allowed
ones, and then `dataclass_from(cls, m)` to build the dataclass. Config files write a preset
into `config.model` with `write_fields(m, preset)`, the inverse.

`allowed` describes the section: an iterable of field names, or a mapping from field name to
None (a leaf) or to the allowed fields of a nested ConfigDict (checked recursively). The
trainer's own `config.model` fields (`BASE_FIELDS`) are always allowed, and every model must
honour them: a model that cannot rematerialise or run in another dtype rejects the value in
its `from_config`, it never ignores it. A model dataclass inherits them from `ModelFields`,
which also checks remat_policy; `check_positive` is the shared check of its size fields.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Callable, Collection, Mapping, Union

import jax.numpy as jnp
import ml_collections

from common.layers import dtypes
from common.layers import remat
from common.layers import validation


@dataclasses.dataclass(frozen=True)
class ModelFields:
  """The `config.model` fields every model has (common.train.defaults.base_config sets them).

  A model dataclass subclasses it (frozen too) and, when it has its own __post_init__, calls
  `super().__post_init__()` there.
  """
  dtype: Any = jnp.float32          # compute dtype (resolved by dtypes.resolve_dtype)
  param_dtype: Any = jnp.float32    # parameter storage dtype
  remat_policy: str = "none"        # per-block rematerialisation, common.layers.remat.POLICIES

  def __post_init__(self):
    validation.check_choice("config.model.remat_policy", self.remat_policy, remat.POLICIES)


BASE_FIELDS = tuple(f.name for f in dataclasses.fields(ModelFields))

Allowed = Union[Collection[str], Mapping[str, Any]]


def _as_mapping(allowed: Allowed) -> Mapping[str, Any]:
  if isinstance(allowed, Mapping):
    return allowed
  return {name: None for name in allowed}


def check_fields(m: ml_collections.ConfigDict, allowed: Allowed, *,
                 path: str = "config.model", base: Collection[str] = BASE_FIELDS) -> None:
  """Raises ValueError naming the first unknown field of `m` and the allowed ones."""
  spec = dict(_as_mapping(allowed))
  for name in base:
    spec.setdefault(name, None)
  for name in sorted(m.keys()):
    if name not in spec:
      close = difflib.get_close_matches(name, spec, n=1)
      hint = f" (did you mean {path}.{close[0]}?)" if close else ""
      raise ValueError(f"unknown field {path}.{name}{hint}; allowed fields of {path}: "
                       f"{', '.join(sorted(spec))}.")
    sub = spec[name]
    if sub is not None and isinstance(m[name], ml_collections.ConfigDict):
      check_fields(m[name], sub, path=f"{path}.{name}", base=())


def check_positive(cfg: Any, names: Collection[str], *, path: str = "config.model") -> None:
  """Raises ValueError naming the first of `cfg`'s fields `names` that is not an int > 0."""
  for name in names:
    validation.check_positive(f"{path}.{name}", getattr(cfg, name))


def dataclass_fields(cls: type) -> tuple[str, ...]:
  """The field names of a dataclass, in declaration order."""
  return tuple(f.name for f in dataclasses.fields(cls))


def write_fields(m: ml_collections.ConfigDict, cfg: Any,
                 **convert: Callable[[Any], Any]) -> None:
  """Writes the fields of the model dataclass `cfg` into `m`, but not BASE_FIELDS (config files
  keep the trainer's dtype names and remat policy). A nested dataclass becomes a ConfigDict;
  `convert` maps a field name to a function applied to its value first."""
  for name in dataclass_fields(type(cfg)):
    if name in BASE_FIELDS:
      continue
    value = getattr(cfg, name)
    if name in convert:
      value = convert[name](value)
    elif dataclasses.is_dataclass(value):
      value = ml_collections.ConfigDict(dataclasses.asdict(value))
    m[name] = value


def dataclass_from(cls: type, m: Mapping[str, Any], *, path: str = "config.model",
                   skip: Collection[str] = (), **overrides) -> Any:
  """`cls(**fields)` from the entries of `m` that are fields of `cls` (minus `skip`).

  Lists become tuples (ConfigDicts hold tuples as lists after overrides), dtype fields are
  resolved by `common.layers.dtypes.resolve_dtype`, and `overrides` win. A ValueError or
  TypeError raised by the dataclass is re-raised with `path` in front of it.
  """
  kwargs = {}
  for name in dataclass_fields(cls):
    if name in skip or name not in m:
      continue
    value = m[name]
    if isinstance(value, list):
      value = tuple(value)
    if isinstance(value, ml_collections.ConfigDict):
      value = value.to_dict()
    if name in ("dtype", "param_dtype"):
      value = dtypes.resolve_dtype(value, f"{path}.{name}")
    kwargs[name] = value
  kwargs.update(overrides)
  try:
    return cls(**kwargs)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{path}: {e}") from e
