"""The superposition data: x is the features along fixed directions, the stream is the same for
any process count, the validation examples are fixed, and bad fields name themselves."""
import numpy as np
import pytest

from common.data import config as data_config, pipeline, superposition

CFG = data_config.superposition_data_config(num_features=24, input_dim=6, density=0.1,
                                            eval_examples=10)


def _train(process_index=0, process_count=1, batch_size=8, seed=3):
  return pipeline.train_iterator(CFG, seed=seed, process_index=process_index,
                                 process_count=process_count, batch_size=batch_size)


def test_inputs_are_the_features_along_fixed_unit_directions():
  batch = next(_train())
  e = superposition.from_config(CFG).directions()
  np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(batch["x"], batch["features"] @ e, rtol=1e-5, atol=1e-6)
  a = batch["features"]
  assert a.shape == (8, 24) and (a >= 0).all() and (a < 1).all()
  assert 0 < (a > 0).mean() < 0.3            # sparse: density 0.1


def test_two_processes_read_the_one_process_stream_in_blocks():
  whole = [next(it) for it in [_train(batch_size=8)] for _ in range(2)]
  it0, it1 = _train(0, 2, 4), _train(1, 2, 4)
  for step in range(2):
    a, b = next(it0), next(it1)
    np.testing.assert_array_equal(np.concatenate([a["x"], b["x"]]), whole[step]["x"])
  other_seed = next(_train(seed=4))
  assert not np.array_equal(other_seed["features"], whole[0]["features"])


def test_validation_examples_are_fixed_and_padded_with_a_mask():
  batches = list(pipeline.eval_iterator(CFG, split="validation", process_index=0,
                                        process_count=1, batch_size=4))
  assert [b["mask"].sum() for b in batches] == [4, 4, 2]
  fixed = superposition.eval_set(CFG)
  np.testing.assert_array_equal(np.concatenate([b["features"] for b in batches])[:10],
                                fixed["features"])
  assert pipeline.batch_spec(CFG, 4)["x"][0] == (4, 6)


@pytest.mark.parametrize("field, value, message", [
    ("density", 1.5, "density"), ("input_dim", 200, "input_dim=200"),
    ("eval_split", "test", "eval_split"), ("num_features", 0, "num_features")])
def test_bad_fields_name_themselves(field, value, message):
  cfg = data_config.superposition_data_config(**{field: value})
  with pytest.raises(ValueError, match=message):
    pipeline.validate(cfg)
