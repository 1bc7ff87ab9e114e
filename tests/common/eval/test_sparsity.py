"""Per-layer nonzero fractions over a padded split, against numpy."""
import numpy as np
import pytest
from flax import nnx

from common.eval import sparsity


def test_matches_numpy_per_layer_and_mean(model, ctx):
  got = sparsity.SparsityEvaluator(("train", "test"))(model, ctx)
  for split in ("train", "test"):
    fractions = model.numpy_forward(ctx.splits[split][0])[1]
    for i, f in enumerate(fractions):
      np.testing.assert_allclose(got[f"{split}/act_nonzero/layer_{i}"], f.mean(), rtol=1e-6)
    np.testing.assert_allclose(got[f"{split}/act_nonzero/mean"],
                               np.mean([f.mean() for f in fractions]), rtol=1e-6)
  assert not nnx.pop(model, nnx.Intermediate)  # the evaluator leaves the model clean


def test_a_model_without_statistics_is_an_error(ctx):
  model = nnx.Linear(12, 3, rngs=nnx.Rngs(0))
  forward = lambda m, b: m(b["image"].reshape(b["image"].shape[0], -1))  # noqa: E731
  with pytest.raises(ValueError, match="sowed no 'act_nonzero'"):
    sparsity.SparsityEvaluator("test", forward=forward)(model, ctx)
