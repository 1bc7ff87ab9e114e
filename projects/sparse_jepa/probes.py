"""Closed-form linear probes on frozen features (numpy, float64, on the host).

A ridge fit is one (D+1) x (D+1) solve, so probing costs nothing next to extracting the features,
and it has no learning rate or step count to tune: the only knob, the L2 strength, is picked on a
held-out slice of the probe's training features from a fixed grid.

  fit_ridge(x, y, l2)          weights (D+1, T) of min ||[x 1] W - y||^2 + l2 * n * ||W[:D]||^2
  ridge_classifier(...)        one-hot ridge ("least-squares classifier"): accuracies
  ridge_regression(...)        per-target R^2
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

L2_GRID = (1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
HOLDOUT_FRACTION = 0.2


def _check(x: np.ndarray, y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  if x.ndim != 2 or y.shape[0] != x.shape[0] or x.shape[0] < 2:
    raise ValueError(f"{name}: features of shape {x.shape} and targets of shape {y.shape}; "
                     "allowed: (N, D) features and N >= 2 targets.")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name}: features hold non-finite values; the encoder diverged.")
  return x, y


def standardizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean, scale) of the columns; constant columns get scale 1 (they carry no signal)."""
  mean = x.mean(0)
  scale = x.std(0)
  return mean, np.where(scale > 1e-12, scale, 1.0)


def fit_ridge(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
  """W (D+1, T) minimising ||[x 1] W - y||^2 + l2 * N * ||W[:D]||^2 (the bias is not penalised).

  Centring x and y removes the bias from the penalised solve: W[:D] = (xc'xc + l2 N I)^-1 xc'yc.
  """
  x, y = _check(x, y, "fit_ridge")
  if l2 < 0:
    raise ValueError(f"l2={l2!r}; allowed: >= 0.")
  y2 = y.reshape(len(y), -1)
  xm, ym = x.mean(0), y2.mean(0)
  xc, yc = x - xm, y2 - ym
  gram = xc.T @ xc + l2 * len(x) * np.eye(x.shape[1])
  w = np.linalg.lstsq(gram, xc.T @ yc, rcond=None)[0]
  bias = ym - xm @ w
  return np.vstack([w, bias[None]])


def predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
  return np.asarray(x, np.float64) @ w[:-1] + w[-1]


def r2_scores(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
  """Per-column coefficient of determination 1 - SSE / SST (NaN for a constant column)."""
  y = np.asarray(y, np.float64).reshape(len(y), -1)
  pred = np.asarray(pred, np.float64).reshape(len(y), -1)
  sst = np.sum(np.square(y - y.mean(0)), 0)
  sse = np.sum(np.square(y - pred), 0)
  return np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.nan)


def _holdout_split(n: int) -> tuple[np.ndarray, np.ndarray]:
  # A fixed permutation: the choice of l2 must not change between evaluations of one run.
  order = np.random.default_rng(0).permutation(n)
  cut = max(1, int(round(n * HOLDOUT_FRACTION)))
  return order[cut:], order[:cut]


def _select_l2(x, y, score, l2_grid: Sequence[float]) -> float:
  if len(l2_grid) == 1:
    return float(l2_grid[0])
  fit_idx, val_idx = _holdout_split(len(x))
  scores = [score(predict(fit_ridge(x[fit_idx], y[fit_idx], l2), x[val_idx]), val_idx)
            for l2 in l2_grid]
  return float(l2_grid[int(np.nanargmax(scores))])


def ridge_classifier(x_train, labels_train, x_test, labels_test, *, num_classes: int,
                     l2_grid: Sequence[float] = L2_GRID) -> dict[str, float]:
  """Least-squares classifier on standardised features; accuracies and the chosen l2."""
  x_train, labels_train = _check(x_train, labels_train, "ridge_classifier(train)")
  x_test, labels_test = _check(x_test, labels_test, "ridge_classifier(test)")
  labels_train, labels_test = labels_train.astype(int), labels_test.astype(int)
  for name, lab in (("train", labels_train), ("test", labels_test)):
    if lab.min() < 0 or lab.max() >= num_classes:
      raise ValueError(f"ridge_classifier: {name} labels span [{lab.min()}, {lab.max()}]; "
                       f"allowed: [0, num_classes={num_classes}).")
  mean, scale = standardizer(x_train)
  xs_train, xs_test = (x_train - mean) / scale, (x_test - mean) / scale
  onehot = np.eye(num_classes)[labels_train]
  acc = lambda pred, idx: float(np.mean(pred.argmax(1) == labels_train[idx]))
  l2 = _select_l2(xs_train, onehot, acc, l2_grid)
  w = fit_ridge(xs_train, onehot, l2)
  return {"train_accuracy": float(np.mean(predict(w, xs_train).argmax(1) == labels_train)),
          "test_accuracy": float(np.mean(predict(w, xs_test).argmax(1) == labels_test)),
          "l2": l2}


def ridge_regression(x_train, y_train, x_test, y_test, *,
                     l2_grid: Sequence[float] = L2_GRID) -> dict[str, np.ndarray | float]:
  """Ridge regression on standardised features: per-target test and train R^2, chosen l2."""
  x_train, y_train = _check(x_train, y_train, "ridge_regression(train)")
  x_test, y_test = _check(x_test, y_test, "ridge_regression(test)")
  mean, scale = standardizer(x_train)
  xs_train, xs_test = (x_train - mean) / scale, (x_test - mean) / scale
  y2 = y_train.reshape(len(y_train), -1)
  r2 = lambda pred, idx: float(np.nanmean(r2_scores(y2[idx], pred)))
  l2 = _select_l2(xs_train, y2, r2, l2_grid)
  w = fit_ridge(xs_train, y2, l2)
  return {"test_r2": r2_scores(y_test, predict(w, xs_test)),
          "train_r2": r2_scores(y2, predict(w, xs_train)), "l2": l2}
