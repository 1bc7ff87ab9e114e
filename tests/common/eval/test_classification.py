"""Accuracy, top-5, loss and ECE over a padded split, against numpy."""
import numpy as np
from flax import nnx

from common.eval import classification


def _numpy_reference(logits, labels, num_bins=15):
  logits = logits - logits.max(-1, keepdims=True)
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  pred = probs.argmax(-1)
  correct = pred == labels
  top5 = np.argsort(-probs, -1)[:, :5]
  conf = probs.max(-1)
  ece = 0.0
  for b in range(num_bins):
    in_bin = (conf > b / num_bins) & (conf <= (b + 1) / num_bins)
    if in_bin.any():
      ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
  return {"accuracy": correct.mean(), "top5_accuracy": (top5 == labels[:, None]).any(-1).mean(),
          "loss": -np.log(probs[np.arange(len(labels)), labels]).mean(), "ece": ece}


def test_matches_numpy_on_every_split(model, ctx):
  evaluator = classification.ClassificationEvaluator(("train", "test"))
  got = evaluator(model, ctx)
  for split in ("train", "test"):
    images, labels = ctx.splits[split]
    want = _numpy_reference(model.numpy_forward(images)[0], labels)
    assert got[f"{split}/num_examples"] == len(labels)
    for name, value in want.items():
      np.testing.assert_allclose(got[f"{split}/{name}"], value, rtol=1e-5, atol=1e-6,
                                 err_msg=f"{split}/{name}")
  # The model's MLPs sow statistics; left on the model they would force a retrace per batch.
  assert not nnx.pop(model, nnx.Intermediate)


def test_max_batches_is_passed_on(model, ctx):
  got = classification.ClassificationEvaluator("test", max_batches=1)(model, ctx)
  assert got["test/num_examples"] == 4
  assert ctx.calls[-1] == ("test", 1)
