"""benchmarks/train_step.py: the --config / --set cases and one step timed on a config's own data."""
import pytest

from benchmarks import train_step

RECALL = "projects/routing_transformer/configs/recall.py:tiny,mixer=local"


def test_sets_apply_to_the_config_before_them():
  argv = ["--steps", "2", "--config", "a.py:x", "--config=b.py:y", "--set", "model.k=3",
          "--set=model.name=dense", "--only", "b"]
  args = train_step.parse_args(argv)
  assert args.steps == 2 and args.only == "b"
  assert train_step.config_cases(args.pairs) == [
      ("a.py:x", "a.py:x", {}),
      ("b.py:y [model.k=3] [model.name=dense]", "b.py:y", {"model.k": 3, "model.name": "dense"})]
  with pytest.raises(SystemExit, match="after a --config"):
    train_step.config_cases(train_step.parse_args(["--set", "model.k=3"]).pairs)


def test_bench_times_a_config_on_its_own_data():
  r = train_step.bench(RECALL, None, steps=1, repeats=1, task_data=True,
                       **{"model.mixer_options.window": 64})
  assert r["batch"] == 8 and r["step_s"] > 0 and r["params"] > 0
