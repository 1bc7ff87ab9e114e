"""Closed-form probes against direct numpy solutions on synthetic features."""
import numpy as np
import pytest

from projects.sparse_jepa import probes


def test_fit_ridge_matches_the_normal_equations():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(50, 6)), rng.normal(size=(50, 2))
  l2 = 0.1
  w = probes.fit_ridge(x, y, l2)
  # Direct solve of the same objective with an explicit, unpenalised bias column.
  xa = np.hstack([x, np.ones((50, 1))])
  penalty = np.diag([l2 * 50] * 6 + [0.0])
  want = np.linalg.solve(xa.T @ xa + penalty, xa.T @ y)
  np.testing.assert_allclose(w, want, rtol=1e-8, atol=1e-10)
  # l2 = 0 is ordinary least squares.
  np.testing.assert_allclose(probes.fit_ridge(x, y, 0.0),
                             np.linalg.lstsq(xa, y, rcond=None)[0], atol=1e-10)


def test_r2_scores():
  y = np.array([[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]])
  pred = np.array([[1.0, 2.0], [2.5, 2.0], [3.0, 2.0]])
  got = probes.r2_scores(y, pred)
  np.testing.assert_allclose(got[0], 1 - 0.25 / 2.0)
  assert np.isnan(got[1])  # a constant target has no variance to explain


def test_ridge_classifier_and_regression_on_separable_data():
  rng = np.random.default_rng(1)
  centres = rng.normal(size=(3, 8)) * 4
  labels = rng.integers(0, 3, 300)
  x = centres[labels] + rng.normal(size=(300, 8))
  res = probes.ridge_classifier(x[:200], labels[:200], x[200:], labels[200:], num_classes=3)
  assert res["test_accuracy"] > 0.95 and res["train_accuracy"] > 0.95
  assert res["l2"] in probes.L2_GRID
  # Least-squares classifier == argmax of the one-hot ridge fit on standardised features.
  mean, scale = probes.standardizer(x[:200])
  w = probes.fit_ridge((x[:200] - mean) / scale, np.eye(3)[labels[:200]], res["l2"])
  pred = probes.predict(w, (x[200:] - mean) / scale).argmax(1)
  assert res["test_accuracy"] == pytest.approx(np.mean(pred == labels[200:]))
  targets = np.stack([x @ np.arange(8.0), x[:, 0] ** 2], axis=1)
  reg = probes.ridge_regression(x[:200], targets[:200], x[200:], targets[200:])
  assert reg["test_r2"][0] > 0.999  # linear target: explained
  assert reg["test_r2"][1] < 0.5    # quadratic target: mostly not


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="labels span"):
    probes.ridge_classifier(np.zeros((4, 2)), np.array([0, 1, 2, 5]), np.zeros((2, 2)),
                            np.array([0, 1]), num_classes=3)
  with pytest.raises(ValueError, match="non-finite"):
    probes.fit_ridge(np.full((3, 2), np.nan), np.zeros(3), 0.1)
  with pytest.raises(ValueError, match="l2=-1"):
    probes.fit_ridge(np.zeros((3, 2)), np.zeros(3), -1)
