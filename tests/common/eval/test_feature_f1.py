"""feature_f1: coverage over all / occurring properties and per-unit F1, at their extremes."""
import numpy as np
import pytest

from common.eval import feature_f1


def _truth(n=400, p=6, seed=0):
  rng = np.random.default_rng(seed)
  truth = rng.random((n, p)) < 0.2
  truth[:, -1] = False          # a property that never occurs
  return truth


def test_indicator_units_are_monosemantic_and_cover_every_occurring_property():
  truth = _truth()
  acts = truth[:, :-1].astype(np.float32) * 2.0         # one unit per occurring property
  assert feature_f1.unit_f1(acts, truth) == pytest.approx(1.0)
  assert feature_f1.coverage(acts, truth, occurring_only=True) == pytest.approx(1.0)
  # The repo's average counts the never-occurring property as 0: 5 of 6.
  assert feature_f1.coverage(acts, truth) == pytest.approx(5 / 6)


def test_a_unit_firing_for_two_properties_is_polysemantic():
  truth = _truth()
  both = (truth[:, 0] | truth[:, 1]).astype(np.float32)[:, None]   # fires for either
  f1 = feature_f1.unit_f1(both, truth)
  assert 0.4 < f1 < 0.8          # F1 against one of two equally likely properties: ~2/3
  silent = np.zeros((len(truth), 3), np.float32)
  assert feature_f1.unit_f1(silent, truth) == 0.0         # no unit fires: nothing to score
  assert feature_f1.coverage(silent, truth) == 0.0


def test_chunking_does_not_change_the_scores():
  truth = _truth(p=9)
  rng = np.random.default_rng(1)
  acts = rng.random((len(truth), 11)).astype(np.float32) * truth[:, rng.integers(0, 9, 11)]
  for fn in (feature_f1.coverage, feature_f1.unit_f1):
    assert fn(acts, truth, feature_chunk=4) == pytest.approx(fn(acts, truth))


def test_bad_inputs_name_the_problem():
  truth = _truth()
  with pytest.raises(ValueError, match="targets must be bool"):
    feature_f1.unit_f1(np.zeros((400, 2)), truth.astype(np.int32))
  with pytest.raises(ValueError, match="same N"):
    feature_f1.coverage(np.zeros((3, 2)), truth)
