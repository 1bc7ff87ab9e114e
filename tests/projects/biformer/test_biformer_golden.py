"""Golden test: converted official BiFormer weights reproduce the official PyTorch outputs.

Data: <repo>/../shared/golden/biformer/<case>/ (see shared/golden/README.md). Every float key
is scored max|a-b| / max(1, max|b|) <= config["atol"]; logits also against the stricter
config["atol_logits_strict"]. Router index sets must be identical, except that where regions
tie exactly (config["r_idx_tied_regions"], pure-padding regions in tiny_s1_autopad) only the
ids outside the tied set and the number of ids taken from it must agree.
"""
import json
import os

import numpy as np
import pytest

from projects.biformer import convert
from tests import golden

CASES = ("tiny_s0", "tiny_s1_autopad")


@pytest.fixture(scope="module", params=CASES)
def case(request):
  """(config.json, reference outputs, our outputs), converted and run once per case."""
  case_dir = str(golden.folder(f"biformer/{request.param}"))
  with open(os.path.join(case_dir, "config.json")) as f:
    meta = json.load(f)
  with np.load(os.path.join(case_dir, "outputs.npz")) as ref:
    ref = {k: ref[k] for k in ref.files}
  return request.param, meta, ref, convert.convert_case(case_dir)


def _score(a, b):
  return float(np.max(np.abs(a.astype(np.float64) - b)) / max(1.0, float(np.max(np.abs(b)))))


def test_same_keys_and_shapes(case):
  _, _, ref, out = case
  assert sorted(out) == sorted(ref)
  for k in ref:
    assert out[k].shape == ref[k].shape, k
    assert out[k].dtype == ref[k].dtype, k


def test_float_outputs_within_atol(case):
  name, meta, ref, out = case
  scores = {k: _score(out[k], ref[k]) for k in ref if not k.startswith("r_idx/")}
  assert set(scores) == {"logits", "stage0", "stage1", "stage2", "stage3"}
  bad = {k: s for k, s in scores.items() if not s <= meta["atol"]}
  assert not bad, f"{name}: scored error above atol={meta['atol']}: {bad}"
  assert scores["logits"] <= meta["atol_logits_strict"], (name, scores["logits"])


def test_router_index_sets(case):
  name, meta, ref, out = case
  tied_all = meta.get("r_idx_tied_regions", {})
  keys = [k for k in ref if k.startswith("r_idx/")]
  assert keys, "no router outputs in the golden data"
  for k in keys:
    a, b = out[k], ref[k]
    tied = tied_all.get(k.split("/", 1)[1])
    if not tied:
      np.testing.assert_array_equal(a, b, err_msg=f"{name} {k}")
      continue
    in_tied = lambda x: np.isin(x, tied)
    # Outside the tied set the (sorted) ids must agree; from the tied set only the count.
    np.testing.assert_array_equal(in_tied(a).sum(-1), in_tied(b).sum(-1),
                                  err_msg=f"{name} {k}: count from tied set")
    for row_a, row_b in zip(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])):
      np.testing.assert_array_equal(row_a[~in_tied(row_a)], row_b[~in_tied(row_b)],
                                    err_msg=f"{name} {k}: ids outside the tied set")


def test_block_sparse_kernel_reproduces_golden():
  """The shared kernel (attention_impl='auto') as the routed attention, on the auto-pad case."""
  case_dir = str(golden.folder("biformer/tiny_s1_autopad"))
  with open(os.path.join(case_dir, "config.json")) as f:
    meta = json.load(f)
  with np.load(os.path.join(case_dir, "outputs.npz")) as ref:
    ref = {k: ref[k] for k in ref.files}
  out = convert.convert_case(case_dir, attention_impl="auto")
  for k in ref:
    if k.startswith("r_idx/"):
      # Routing precedes the attention backend, so the indices are those of the gather path.
      continue
    assert _score(out[k], ref[k]) <= meta["atol"], k
