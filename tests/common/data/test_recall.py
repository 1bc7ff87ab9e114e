"""The recall stream: every answer is recoverable from its store alone, at the stated distance."""
import numpy as np
import pytest

from common.data import config as data_config, pipeline, recall

CFG = data_config.recall_data_config(seq_len=256, num_keys=6, num_values=4, num_fillers=5,
                                     near_max=16, far_min=96, near_fraction=0.5,
                                     eval_examples=5)
SPEC = recall.from_config(CFG)


def _decode(ex):
  """(key, stored value, store position, answer value, distance) per weighted answer."""
  out = []
  for q in np.flatnonzero(ex["weights"]):
    key = ex["inputs"][q] - SPEC.queries
    d = ex["distance"][q]
    store = ex["inputs"][q - d] - recall.PAIRS
    out.append((key, store // SPEC.num_values, store % SPEC.num_values,
                ex["targets"][q] - SPEC.answers, d))
  return out


def test_every_answer_is_its_keys_stored_value():
  rng = np.random.default_rng(0)
  for _ in range(20):
    ex = recall.example(SPEC, rng)
    rows = _decode(ex)
    assert sorted(r[0] for r in rows) == list(range(SPEC.num_keys))  # each key queried once
    for key, store_key, stored, answer, d in rows:
      assert store_key == key and stored == answer
      assert 2 <= d <= SPEC.near_max or d >= SPEC.far_min
    # Stores, queries and answers use their own id ranges; the rest are fillers.
    pairs = (ex["inputs"] >= recall.PAIRS) & (ex["inputs"] < SPEC.queries)
    assert pairs.sum() == SPEC.num_keys
    assert ex["inputs"][0] == recall.BOS and ex["inputs"].max() < SPEC.vocab_size
    np.testing.assert_array_equal(ex["inputs"][1:], ex["targets"][:-1])


def test_near_and_far_both_occur():
  rng = np.random.default_rng(1)
  d = np.concatenate([recall.example(SPEC, rng)["distance"] for _ in range(20)])
  d = d[d >= 0]
  assert (d <= SPEC.near_max).any() and (d >= SPEC.far_min).any()


def test_stream_is_deterministic_and_process_independent():
  one = next(pipeline.train_iterator(CFG, seed=3, process_index=0, process_count=1,
                                     batch_size=4))
  again = next(pipeline.train_iterator(CFG, seed=3, process_index=0, process_count=1,
                                       batch_size=4))
  halves = [next(pipeline.train_iterator(CFG, seed=3, process_index=p, process_count=2,
                                         batch_size=2)) for p in range(2)]
  other = next(pipeline.train_iterator(CFG, seed=4, process_index=0, process_count=1,
                                       batch_size=4))
  for k in one:
    np.testing.assert_array_equal(one[k], again[k])
    np.testing.assert_array_equal(one[k], np.concatenate([h[k] for h in halves]))
  assert not np.array_equal(one["inputs"], other["inputs"])
  assert pipeline.batch_spec(CFG, 4)["distance"] == ((4, 256), np.dtype("int32"))
  assert pipeline.vocab_size(CFG) == SPEC.vocab_size


def test_validation_split_is_fixed_and_padded():
  batches = list(pipeline.eval_iterator(CFG, split="validation", process_index=0,
                                        process_count=1, batch_size=4))
  assert [b["mask"].sum() for b in batches] == [4, 1]
  assert batches[1]["weights"][1:].sum() == 0  # padding rows carry no answers


@pytest.mark.parametrize("overrides, field", [
    (dict(far_min=8), "far_min"), (dict(far_min=400), "seq_len"),
    (dict(near_fraction=1.5), "near_fraction"), (dict(train_split="test"), "train_split")])
def test_bad_fields_are_named(overrides, field):
  with pytest.raises(ValueError, match=field):
    pipeline.validate(data_config.recall_data_config(**dict(CFG.to_dict(), **overrides)))
