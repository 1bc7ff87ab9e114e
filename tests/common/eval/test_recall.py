"""Loss by distance (common/eval/recall.py): the k-gram repeat distance against a brute-force
search, the bucket names, the evaluator's sums against numpy, and the factories' errors."""
import types

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from common.eval import recall


def _brute_force(seq: np.ndarray, k: int) -> np.ndarray:
  """Distance of each position p >= 1 of seq to the last earlier equal k-gram, else -1."""
  out = np.full(len(seq), -1)
  for p in range(k - 1, len(seq)):
    for s in range(p - 1, k - 2, -1):
      if np.array_equal(seq[s - k + 1:s + 1], seq[p - k + 1:p + 1]):
        out[p] = p - s
        break
  return out[1:]


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_repeat_distance_equals_a_brute_force_search(k):
  rng = np.random.default_rng(k)
  seqs = rng.integers(0, 3, (3, 41))                      # a small vocabulary: many repeats
  got = np.asarray(recall.repeat_distance(jnp.asarray(seqs[:, :-1]), jnp.asarray(seqs[:, 1:]), k))
  want = np.stack([_brute_force(s, k) for s in seqs])
  np.testing.assert_array_equal(got, want)
  assert (got > 0).any() and (got == -1).any()


def test_bucket_names_and_bad_edges():
  assert recall.repeat_buckets((64, 256)) == {
      "le64": (1, 64), "65to256": (65, 256), "gt256": (257, 2**31 - 1), "none": (-1, -1)}
  for bad in ((), (0, 5), (64, 32), (8, 8)):
    with pytest.raises(ValueError, match="config.eval.repeat_edges"):
      recall.repeat_buckets(bad)


class _LMContext:
  """Two batches of 2 sequences, the second one padded (mask 0, garbage tokens)."""

  def __init__(self, tokens, weights):
    self.tokens, self.weights = tokens, weights

  def batches(self, split, *, max_batches=None):
    del split, max_batches
    for start in (0, 2):
      rows = slice(start, start + 2)
      mask = np.array([1.0, 1.0 if start == 0 else 0.0], np.float32)
      yield {"inputs": jnp.asarray(self.tokens[rows, :-1]),
             "targets": jnp.asarray(self.tokens[rows, 1:]),
             "weights": jnp.asarray(self.weights[rows]), "mask": jnp.asarray(mask)}


def test_the_evaluator_sums_match_numpy_and_padding_never_counts():
  rng = np.random.default_rng(0)
  vocab, t, k = 4, 30, 2
  tokens = rng.integers(0, vocab, (4, t + 1))
  weights = (rng.random((4, t)) < 0.8).astype(np.float32)
  table = rng.normal(size=(vocab, vocab)).astype(np.float32)     # logits = table[input]
  forward = lambda model, batch: jnp.asarray(table)[batch["inputs"]]
  buckets = recall.repeat_buckets((3, 9))
  evaluator = recall.DistanceEvaluator(
      "validation", prefix="repeat", buckets=buckets, forward=forward, fractions=True,
      distance=lambda b: recall.repeat_distance(b["inputs"], b["targets"], k))
  unused = nnx.Linear(1, 1, rngs=nnx.Rngs(0))                     # the forward ignores it
  out = evaluator(unused, _LMContext(tokens, weights))
  real = slice(0, 3)                                              # row 3 is padding
  logits = table[tokens[real, :-1]]
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  nll = -np.take_along_axis(logp, tokens[real, 1:, None], -1)[..., 0]
  dist = np.stack([_brute_force(s, k) for s in tokens[real]])
  total = weights[real].sum()
  for name, (lo, hi) in buckets.items():
    w = weights[real] * ((dist >= lo) & (dist <= hi))
    assert out[f"validation/repeat_{name}_count"] == w.sum()
    assert out[f"validation/repeat_{name}_fraction"] == pytest.approx(w.sum() / total)
    if w.sum():
      assert out[f"validation/repeat_{name}_ce"] == pytest.approx((nll * w).sum() / w.sum(),
                                                                   rel=1e-5)
  assert sum(out[f"validation/repeat_{n}_count"] for n in buckets) == total


def test_the_factories_refuse_data_they_cannot_score():
  def ctx(kind, **evals):
    config = ml_collections.ConfigDict(dict(
        data=dict(kind=kind), eval=dict(splits=("validation",), **evals)))
    return types.SimpleNamespace(config=config, task=types.SimpleNamespace(eval_forward=None))
  with pytest.raises(ValueError, match="'repeat_distance', which scores text"):
    recall.build_repeat(ctx("image"))
  with pytest.raises(ValueError, match="config.eval.repeat_k=0"):
    recall.build_repeat(ctx("text", repeat_k=0))
  with pytest.raises(ValueError, match="needs config.data.kind='recall'"):
    recall.build(ctx("text"))
  assert recall.build_repeat(ctx("text")).buckets["le64"] == (1, 64)
