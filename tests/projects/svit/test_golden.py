"""Golden test: converted official STViT weights reproduce the official outputs.

Cases live in <repo>/../shared/golden/stvit (see its README): each is scored per key as
max|a-b| / max(1, max|b|) <= config atol, and logits also at the strict atol.
"""
import json

import numpy as np
import pytest

import common  # noqa: F401
from common import convert_cli
from third_party.stvit import case as case_lib
from third_party.stvit import weights
from tests import golden

CASES = golden.cases("stvit")


@pytest.fixture(scope="module", params=CASES or ["absent"])  # absent: golden.folder decides
def case(request):
  """Runs each case once (one compile) for all the checks below."""
  path = golden.folder("stvit") / request.param
  meta = json.loads((path / "config.json").read_text())
  expected = convert_cli.load_npz(str(path / "outputs.npz"))
  return meta, expected, case_lib.run_case(str(path))


def test_every_key_within_atol(case):
  meta, expected, ours = case
  assert set(ours) == set(expected)
  scores = {k: convert_cli.scored_error(ours[k], expected[k]) for k in sorted(expected)}
  print("scored errors:", scores)
  for key in expected:
    assert ours[key].shape == expected[key].shape, key
  bad = {k: v for k, v in scores.items() if not v <= meta["atol"]}
  assert not bad, f"keys above atol {meta['atol']}: {bad}"


def test_logits_strict(case):
  meta, expected, ours = case
  err = convert_cli.scored_error(ours["logits"], expected["logits"])
  assert err <= meta["atol_logits_strict"], err


@pytest.fixture(scope="module")
def state_dict():
  _, sd, _ = case_lib.load_case(str(golden.folder("stvit") / CASES[0]))
  return sd


def _kwargs():
  return json.loads((golden.folder("stvit") / CASES[0] / "config.json").read_text())["kwargs"]


def test_unknown_and_missing_keys_are_listed(state_dict):
  sd = dict(state_dict)
  del sd["layers.1.blocks.0.attn.stoken_refine.qkv.weight"]
  del sd["head.bias"]
  sd["layers.0.blocks.0.pos_embed.shortcut"] = np.zeros((1,), np.float32)
  sd["bogus.weight"] = np.zeros((1,), np.float32)
  with pytest.raises(ValueError) as info:
    case_lib.convert(_kwargs(), sd)
  msg = str(info.value)
  for key in ("layers.1.blocks.0.attn.stoken_refine.qkv.weight", "head.bias",
              "layers.0.blocks.0.pos_embed.shortcut", "bogus.weight"):
    assert key in msg
  assert "unknown keys (2)" in msg and "missing keys (2)" in msg


def test_shape_mismatch_is_listed(state_dict):
  sd = dict(state_dict)
  sd["norm.running_mean"] = np.zeros((3,), np.float32)
  with pytest.raises(ValueError, match=r"norm\.running_mean: \(3,\)"):
    case_lib.convert(_kwargs(), sd)


def test_skipped_keys_are_optional_but_checked(state_dict):
  frozen = [k for k in state_dict if k.endswith((".fold.weights", ".unfold.weights"))]
  assert frozen, "golden state_dict should hold the frozen unfold/fold kernels"
  sd = {k: v for k, v in state_dict.items()
        if k not in frozen and not k.endswith("num_batches_tracked")}
  case_lib.convert(_kwargs(), sd)  # absent constants are fine
  sd = dict(state_dict)
  sd[frozen[0]] = np.zeros_like(state_dict[frozen[0]])
  with pytest.raises(ValueError, match="identity"):
    case_lib.convert(_kwargs(), sd)


def test_unknown_kwargs_are_listed():
  with pytest.raises(ValueError, match="unknown STViT kwargs.*'stoken_sizes'"):
    case_lib.config_lib.config_from_kwargs({"stoken_sizes": [8, 4, 1, 1], "projection": 8})


def test_converted_values_keep_partitioning(state_dict):
  model = case_lib.convert(_kwargs(), state_dict)
  qkv = model.layers[1].blocks[0].attn.stoken_refine.qkv_kernel
  assert qkv.get_metadata()["out_sharding"] == ("embed", None, "heads", "kv")
  # Interleaved per head: official out channel (h * 3 + t) * hd + d -> ours [:, t, h, d].
  w = state_dict["layers.1.blocks.0.attn.stoken_refine.qkv.weight"][:, :, 0, 0]
  hd = qkv.shape[3]
  assert qkv.shape[2] == 2  # stage 1 of the tiny cases has 2 heads
  for t, h, d in [(0, 0, 0), (1, 1, 3), (2, 1, hd - 1)]:
    np.testing.assert_array_equal(np.asarray(qkv[...])[:, t, h, d], w[(h * 3 + t) * hd + d])
  assert weights.source_of(("head", "kernel"), model.config)[0] == "head.weight"
